"""The day-close benchmark still runs (tiny sizes; figures are not checked)."""

from __future__ import annotations

import pytest

from benchmarks.kpi_close import main


def test_kpi_close_benchmark_prints_both_ways_of_closing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # it exits with an error when the two ways give different terms
    main(["--customers", "200", "--events", "3", "--days", "20", "--after", "130"])
    out = capsys.readouterr().out
    rows = {line[:24].strip(): line[24:].split() for line in out.splitlines()[2:4]}
    assert set(rows) == {"boundary parts", "every part"}
    assert rows["boundary parts"][2] == rows["every part"][2]  # the same customers visited
    assert "close time, boundary parts / every part:" in out
