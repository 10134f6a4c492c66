"""The open day's /kpis document, driven the way workers drive it (issue 10).

Events arrive out of order within the lateness bound, day-close ticks close a
few days at a time as the watermark moves, closing prunes old days, partitions
restart from their changelog and move between two workers, and previews of the
open day are taken between ticks — often many closed days after the previous
one, as a replay's throttled previews are. Each partition's preview goes
through the serving store's compare-and-set on (day, events applied); the merge
of the stored previews must equal the brute-force reference over every event
applied, every time it is taken.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.contract import Event
from stream_app.kpi.days import DAY_MS, business_day, to_date
from stream_app.kpi.finality import final_day
from stream_app.kpi.params import KpiParams
from stream_app.kpi.partition import Late, PartitionState
from stream_app.kpi.report import kpi_document
from stream_app.kpi.terms import KpiTerms, merge
from stream_app.serving import version
from tests import kpi_reference as ref
from tests.unit.test_kpi_engine import assert_same, events, params_strategy, reference_params
from tests.unit.test_partition_kpis import fresh, through_changelog

HISTORY_DAYS = 400  # final days kept: the first close makes at most this many final
QUIET = 60  # ticks in a pause of the stream: enough to close any backlog


@dataclass
class PreviewSlots:
    """The serving store's ``preview:<partition>`` keys: a write lands only with a
    newer version (stream_app/serving.py ``publish_preview``)."""

    slots: dict[int, tuple[str, int, KpiTerms]] = field(default_factory=dict)

    def publish(self, partition: int, day: int, count: int, terms: KpiTerms) -> None:
        current = self.slots.get(partition)
        if current is None or current[0] < version(day, count):
            self.slots[partition] = (version(day, count), day, terms)

    def merged(self, day: int, partitions: int) -> KpiTerms | None:
        """What day_close merges into the current document: only once every
        partition has a preview of ``day``."""
        if len(self.slots) < partitions or any(d != day for _, d, _ in self.slots.values()):
            return None
        return merge(t for _, _, t in self.slots.values())


@dataclass
class Fleet:
    """Partitions shared by two workers, each remembering the (day, count) it last
    published per partition (day_close ``DayCloser._previewed``)."""

    params: KpiParams
    min_tracked: int
    parts: dict[int, PartitionState]
    owner: dict[int, int]
    previewed: list[dict[int, tuple[int, int]]] = field(default_factory=lambda: [{}, {}])
    store: PreviewSlots = field(default_factory=PreviewSlots)
    first_final: int | None = None

    def close(self, final: int, first_event_day: int, max_days: int) -> None:
        """Close every partition a bounded number of days towards ``final``."""
        if self.first_final is None:
            self.first_final = max(final - HISTORY_DAYS + 1, first_event_day)
        for part in self.parts.values():
            closed = part.close_through(final, self.first_final, max_days)
            part.published(d for d, _ in closed)

    def move(self, number: int, to: int) -> None:
        """The partition restarts from its changelog on worker ``to``."""
        self.parts[number] = through_changelog(self.parts[number], self.params, self.min_tracked)
        self.owner[number] = to

    def preview(self, day: int) -> KpiTerms | None:
        for number, part in self.parts.items():
            published, count = self.previewed[self.owner[number]], part.applied_events
            if published.get(number) != (day, count):
                self.store.publish(number, day, count, part.preview(day))
                published[number] = (day, count)
        return self.store.merged(day, len(self.parts))

    def caught_up(self, final: int) -> bool:
        return all(p.kpi.closed_day == final for p in self.parts.values())


@st.composite
def arrivals(draw: st.DrawFn, lateness_ms: int) -> list[Event]:
    """A stream of up to 900 days in arrival order: by event time, each event
    delayed within the lateness bound (or a quarter day when it is 0: late)."""
    span = draw(st.sampled_from([40, 420, 900]), label="span_days")
    stream = draw(events(span, max_events=200))
    bound = max(lateness_ms, DAY_MS // 4)
    delays = [draw(st.integers(0, bound)) for _ in stream]
    delayed = sorted(zip(delays, stream, strict=True), key=lambda x: x[1].occurred_ms + x[0])
    return [e for _, e in delayed]


@settings(max_examples=200, deadline=None)
@given(params=params_strategy, data=st.data())
def test_every_open_day_preview_equals_the_reference(
    params: KpiParams, data: st.DataObject
) -> None:
    lateness_ms = data.draw(st.integers(0, 1), label="lateness_days") * DAY_MS
    stream = data.draw(arrivals(lateness_ms))
    n_parts = data.draw(st.integers(1, 3), label="partitions")
    # 1000: previews kept by deltas; 0 and 2: through the full-recompute cycles too
    min_tracked = data.draw(st.sampled_from([0, 2, 1000, 1000]), label="preview_min_tracked")
    fleet = Fleet(
        params,
        min_tracked,
        {n: fresh(params, min_tracked) for n in range(n_parts)},
        {n: data.draw(st.integers(0, 1), label="owner") for n in range(n_parts)},
    )
    # A worker previews on most ticks while live, on few while it replays history.
    preview_every = data.draw(st.sampled_from([1, 3, 10, 30]), label="preview_every")
    days_per_tick = data.draw(st.sampled_from([1, 4, 16]), label="days_per_tick")
    rng = random.Random(data.draw(st.integers(0, 2**32), label="tick_seed"))
    applied: list[Event] = []
    checked: tuple[int, int] | None = None
    watermark = first_event_day = None
    for offset, event in enumerate(stream):
        part = fleet.parts[sum(event.customer_id.encode()) % n_parts]
        if not isinstance(part.apply(event, "s", offset, now_ms=0), Late):
            applied.append(event)
            day = business_day(event.occurred_ms, params.zone)
            first_event_day = day if first_event_day is None else min(first_event_day, day)
        watermark = max(watermark or event.occurred_ms, event.occurred_ms)
        final = final_day(watermark, lateness_ms, params.zone)
        # Ticks run on a timer, however many events arrive between them.
        for _ in range(rng.choice([0, 0, 1, 2, QUIET])):
            if final is not None and first_event_day is not None and final >= first_event_day:
                fleet.close(final, first_event_day, days_per_tick)
            if rng.randrange(10) == 0:
                fleet.move(rng.randrange(n_parts), rng.randrange(2))
            open_day = business_day(watermark, params.zone)
            if rng.randrange(preview_every) == 0 and checked != (open_day, len(applied)):
                merged = fleet.preview(open_day)
                assert merged is not None
                assert_same(
                    kpi_document(merged, open_day, params),
                    ref.kpis_as_of(applied, to_date(open_day), reference_params(params)),
                    f"open day {open_day}",
                )
                checked = (open_day, len(applied))
            if final is not None and fleet.caught_up(final):
                break
