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


def test_scale_benchmark_prints_a_row_per_size(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.scale import main as scale

    scale(["--sizes", "300x2", "--days", "10", "--no-restarts"])  # restarts cost ~20 s
    out = capsys.readouterr().out
    assert "changelog B/ev" in out and "ready kill s" in out
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [row[0] for row in rows] == ["300"]
    for row in rows:
        worker, baseline, ratio = (float(v.replace(",", "")) for v in row[2:5])
        assert worker > 0 and baseline > 0 and abs(ratio - worker / baseline) < 0.002
