"""The ingest benchmark still runs end to end (tiny sizes; figures are not checked)."""

from __future__ import annotations

import pytest

from benchmarks.ingest import main


def test_ingest_benchmark_prints_its_figures(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--events", "400", "--customers", "60", "--rate", "200", "--latency-seconds", "2"])
    out = capsys.readouterr().out
    for label in (
        "baseline consume+decode /s",
        "worker events/s",
        "worker / baseline",
        "event-to-/kpis at",
        "state memory / 100k cust.",
    ):
        assert label in out
    assert "events                               400" in out
    assert "p99" in out and "nan" not in out  # every live event reached /kpis
