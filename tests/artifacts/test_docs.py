"""The docs and deployment files agree with the code: settings, reason codes, commands."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from stream_app.cli import cli
from stream_app.contract import REASON_CODES
from stream_app.settings import settings_table

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
EVENTS = (ROOT / "docs" / "events.md").read_text(encoding="utf-8")
CONFIGURATION = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
DOCS = {"README.md": README} | {
    f"docs/{p.name}": p.read_text(encoding="utf-8") for p in sorted((ROOT / "docs").glob("*.md"))
}
ALL_DOCS = "\n".join(DOCS.values())
ENV_EXAMPLE = (ROOT / ".env.example").read_text(encoding="utf-8")
COMPOSE = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
SETTINGS = {name: default for name, default, _ in settings_table()}
ENV_NAME = re.compile(r"LOYALTY_PULSE_[A-Z][A-Z0-9_]*")
SHELL_BLOCK = re.compile(r"^```(?:sh|bash|shell)\n(.*?)^```", re.MULTILINE | re.DOTALL)
EXTRA_REASONS = ["unknown_type", "late"]  # emitted by stream_app/pipeline.py, not the contract


def section(markdown: str, title: str) -> str:
    """The text of a '## title' (or '# title') section, up to the next heading as high."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", markdown, re.M | re.S)
    assert match, f"no '## {title}' section"
    return match.group(1)


def shell_commands(markdown: str) -> list[str]:
    """Commands of the sh/bash code blocks, in order, without comments."""
    commands = []
    for block in SHELL_BLOCK.findall(markdown):
        for line in block.splitlines():
            command = line.split("  #", 1)[0].strip().removeprefix("$ ")
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


# -- settings ----------------------------------------------------------------


def readme_settings_rows() -> dict[str, str]:
    rows = {}
    for line in CONFIGURATION.splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and ENV_NAME.fullmatch(cells[0]):
            rows[cells[0]] = cells[1]
    return rows


def test_readme_documents_every_setting_with_its_default() -> None:
    assert readme_settings_rows() == SETTINGS


@pytest.mark.parametrize("name", [*DOCS, "Dockerfile"])
def test_docs_name_only_real_settings(name: str) -> None:
    text = (ROOT / name).read_text(encoding="utf-8")
    unknown = set(ENV_NAME.findall(text)) - SETTINGS.keys()
    assert not unknown, f"{name} names env vars that are not settings: {sorted(unknown)}"


def test_env_example_lists_exactly_the_settings_with_defaults() -> None:
    entries: dict[str, str] = {}
    lines = ENV_EXAMPLE.splitlines()
    for number, line in enumerate(lines):
        if not line.strip() or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep, f".env.example line {number + 1} is not NAME=value: {line!r}"
        assert name not in entries, f"{name} is listed twice"
        assert lines[number - 1].startswith("# "), f"{name} has no comment line above it"
        entries[name] = value
    assert entries == SETTINGS


# -- reason codes ------------------------------------------------------------


@pytest.mark.parametrize("code", [*REASON_CODES, *EXTRA_REASONS])
def test_events_doc_has_a_row_for_every_reason_code(code: str) -> None:
    assert f"| `{code}` |" in EVENTS


def test_events_doc_reason_table_has_no_unknown_codes() -> None:
    table = section(EVENTS, "Reason codes").split("### ", 1)[0]
    documented = set(re.findall(r"^\| `([a-z0-9_]+(?::<field>)?)` \|", table, re.M))
    assert documented == {*REASON_CODES, *EXTRA_REASONS}


def test_pipeline_still_emits_unknown_type() -> None:
    source = (ROOT / "stream_app" / "pipeline.py").read_text(encoding="utf-8")
    assert '"unknown_type"' in source


# -- docker-compose.yml ------------------------------------------------------


def compose_services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(COMPOSE)["services"]
    return services


def test_compose_names_only_real_settings() -> None:
    unknown = set(ENV_NAME.findall(COMPOSE)) - SETTINGS.keys()
    assert not unknown, f"docker-compose.yml names unknown settings: {sorted(unknown)}"
    for name, service in compose_services().items():
        env = service.get("environment") or {}
        assert isinstance(env, dict), f"{name}: use the mapping form of environment"
        for var in env:
            if var.startswith("LOYALTY_PULSE_"):
                assert var in SETTINGS, f"{name} sets unknown setting {var}"


def test_compose_services_and_builds() -> None:
    services = compose_services()
    assert {"kafka", "redis", "worker", "simulator"} <= services.keys()
    for name in ("worker", "simulator"):
        build = services[name]["build"]
        context = build.get("context") if isinstance(build, dict) else build
        assert context in (".", "./"), f"{name} must build from the repository root"
        assert services[name]["environment"]["LOYALTY_PULSE_BROKER"] == "kafka:9092"
    assert "container_name" not in services["worker"], "a fixed name breaks --scale"
    assert "ports" not in services["worker"], "a host port breaks --scale"


def test_the_image_copies_every_package_the_project_installs() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = [p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]]
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    for package in packages:
        assert f"COPY {package} ./{package}" in dockerfile, f"the image lacks {package}/"


# -- commands shown in the README -----------------------------------------------


def test_quick_start_is_first_and_runs_dev_demo_then_dev_test() -> None:
    headings = re.findall(r"^## (.+)$", README, re.M)
    assert headings[0] == "Quick start"
    assert shell_commands(section(README, "Quick start"))[:2] == ["./dev demo", "./dev test"]


def test_ci_runs_the_readme_test_command() -> None:
    lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    commands = [ln.strip().removeprefix("exec ") for ln in lines if not ln.startswith("#")]
    assert "./dev test" in commands


def test_readme_cli_examples_use_real_commands_and_flags() -> None:
    commands = typer.main.get_group(cli).commands  # duck-typed: typer may vendor click
    checked = 0
    for command in shell_commands(ALL_DOCS):
        if not command.startswith("loyalty-pulse "):
            continue  # other tools' commands may span lines (the jq recipes of kpis.md)
        words = shlex.split(command)
        sub = commands.get(words[1])
        assert sub is not None, f"no such command: {command}"
        flags = {opt for param in sub.params for opt in param.opts}
        for word in words[2:]:
            if word.startswith("--"):
                assert word.split("=", 1)[0] in flags, f"{word} is not a flag of {words[1]}"
        checked += 1
    assert checked >= 6


def test_readme_dev_examples_are_dev_subcommands() -> None:
    script = (ROOT / "dev").read_text(encoding="utf-8")
    known = set(re.findall(r"^  ([a-z|-]+)\)", script, re.M))
    subcommands = {name for alternatives in known for name in alternatives.split("|")}
    for command in shell_commands(ALL_DOCS):
        words = command.split()
        if words[0] == "./dev":
            assert words[1] in subcommands, f"./dev has no subcommand {words[1]!r}"


def test_readme_settings_table_and_env_example_are_generated_from_the_code() -> None:
    from stream_app.settings import settings_env_file, settings_markdown

    assert settings_markdown() in CONFIGURATION, "regenerate: loyalty-pulse settings --markdown"
    env_example = (ROOT / ".env.example").read_text(encoding="utf-8")
    assert env_example == settings_env_file(), "regenerate: loyalty-pulse settings --env"


# -- links ---------------------------------------------------------------------

LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors of the headings of a markdown text."""
    out = set()
    for heading in re.findall(r"^#+ (.+)$", markdown, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        out.add(slug)
    return out


@pytest.mark.parametrize("name", sorted(DOCS))
def test_every_relative_link_of_the_docs_resolves(name: str) -> None:
    base = (ROOT / name).parent
    prose = re.sub(r"^```.*?^```|`[^`\n]*`", "", DOCS[name], flags=re.M | re.S)
    for target in LINK.findall(prose):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        file = (base / path).resolve() if path else ROOT / name
        assert file.exists(), f"{name}: {target} does not exist"
        if anchor and file.suffix == ".md":
            assert anchor in anchors(file.read_text(encoding="utf-8")), f"{name}: no #{anchor}"


def test_the_readme_fits_on_a_few_screens() -> None:
    assert len(README.splitlines()) < 250


SOURCE_PATH = re.compile(
    r"\b(?:tests|stream_app|agents|tables|benchmarks|loyalty_pulse_dev)/[\w/]*\.py\b"
)


@pytest.mark.parametrize("name", sorted(DOCS))
def test_every_source_file_the_docs_name_exists(name: str) -> None:
    for path in SOURCE_PATH.findall(DOCS[name]):
        assert (ROOT / path).exists(), f"{name} names {path}, which does not exist"
