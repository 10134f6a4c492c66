"""Spec §2 finality: a day is final once the watermark passed its end by the lateness."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from stream_app.kpi.days import DAY_MS, business_day, day_end_ms, from_date
from stream_app.kpi.finality import final_day, is_late

HOUR = 3_600_000


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def test_one_day_lateness_in_utc() -> None:
    d = from_date(datetime(2025, 3, 10, tzinfo=UTC).date())
    # end of 2025-03-10 is 03-11T00:00Z; plus one day of lateness: 03-12T00:00Z
    assert final_day(ms("2025-03-11T23:59:59.999+00:00"), DAY_MS, None) == d - 1
    assert final_day(ms("2025-03-12T00:00:00+00:00"), DAY_MS, None) == d
    assert final_day(None, DAY_MS, None) is None


def test_reporting_time_zone_moves_the_day_end() -> None:
    ny = ZoneInfo("America/New_York")
    d = from_date(datetime(2025, 3, 10, tzinfo=ny).date())
    # 2025-03-10 ends at 03-11T00:00 New York = 04:00Z (EDT, UTC-4)
    assert final_day(ms("2025-03-11T03:59:59+00:00"), 0, ny) == d - 1
    assert final_day(ms("2025-03-11T04:00:00+00:00"), 0, ny) == d


@given(
    st.integers(0, 4_000_000_000_000),
    st.integers(0, 3 * DAY_MS),
    st.sampled_from([None, "Asia/Kolkata", "America/New_York"]),
)
def test_final_day_is_the_last_day_whose_end_plus_lateness_has_passed(
    wm: int, lateness: int, tz: str | None
) -> None:
    zone = None if tz is None else ZoneInfo(tz)
    d = final_day(wm, lateness, zone)
    assert d is not None
    assert day_end_ms(d, zone) + lateness <= wm < day_end_ms(d + 1, zone) + lateness
    assert d < business_day(wm, zone)


def test_late_means_on_or_before_the_last_final_day() -> None:
    assert not is_late(5, None)
    assert is_late(5, 5) and is_late(4, 5) and not is_late(6, 5)
