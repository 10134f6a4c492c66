"""The ingest benchmark still runs end to end (tiny sizes; figures are not checked)."""

from __future__ import annotations

from pathlib import Path

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


def test_scale_benchmark_prints_a_row_per_size(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from benchmarks.scale import main as scale

    # restarts cost ~20 s; the profile is py-spy's record of the drain
    scale(["--sizes", "300x2", "--days", "10", "--no-restarts", "--profile", str(tmp_path)])
    captured = capsys.readouterr()
    out = captured.out
    assert (tmp_path / "profile-300x2.txt").is_file()  # py-spy sampled the whole drain
    assert "py-spy over the drain" in captured.err
    assert "changelog B/ev" in out and "markers B/ev" in out and "ready kill s" in out
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [row[0] for row in rows] == ["300"]
    for row in rows:
        worker, baseline, ratio = (float(v.replace(",", "")) for v in row[2:5])
        assert worker > 0 and baseline > 0 and abs(ratio - worker / baseline) < 0.002
