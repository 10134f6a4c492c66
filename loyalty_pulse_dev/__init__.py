"""Tooling around the worker, not part of it: the demo, the traffic simulator,
the embedded broker and a private Redis for local runs, tests and benchmarks.
The CLI reaches them (``loyalty-pulse demo``, ``simulate``, ``broker``)."""
