.PHONY: help demo test test-fast lint setup
help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'
demo:  ## broker + worker + simulated traffic
	./dev demo
test:  ## lint and the whole test suite
	./dev test
test-fast:  ## the unit tests only, no lint (under a minute)
	./dev test-fast
lint:  ## ruff and mypy
	./dev lint
setup:  ## create .venv and install
	./dev setup
