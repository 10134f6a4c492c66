"""A customer's history carries what KPIs need of pruned days: the first event
day and the first two purchase days (spec §2, §3.1), in any arrival order."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.contract import Enrollment, Purchase, Redemption
from stream_app.kpi.customer import CustomerState
from stream_app.kpi.days import DAY_MS
from stream_app.kpi.history import CustomerHistory
from stream_app.kpi.state_codec import decode_state, encode_state

kinds = st.sampled_from(["p", "p", "e", "r"])


@given(st.lists(st.tuples(kinds, st.integers(0, 40), st.sampled_from([None, "", "s1"]))))
@settings(max_examples=200, deadline=None)
def test_first_days_and_stores_survive_any_order_pruning_and_storage(
    arrivals: list[tuple[str, int, str | None]],
) -> None:
    h = CustomerHistory()
    for n, (kind, day, store) in enumerate(arrivals):
        eid, when = f"e{n}", day * DAY_MS
        if kind == "p":
            h.add(Purchase(eid, "c", when, 100 + n, eid, "pos", store), day)
        elif kind == "e":
            h.add(Enrollment(eid, "c", when, "member", store), day)
        else:
            h.add(Redemption(eid, "c", when, 5), day)
    h = decode_state(encode_state(CustomerState(history=h))).history
    h.prune(20)
    bought = sorted(day for kind, day, _ in arrivals if kind == "p")
    assert h.first_purchase_day == (bought[0] if bought else None)
    assert h.second_purchase_day == (bought[1] if len(bought) > 1 else None)
    assert h.first_event_day == min((day for _, day, _ in arrivals), default=None)
    by_store: dict[int, int] = {}
    for kind, day, store in arrivals:
        if kind == "p" and store and day >= 20:
            by_store[day] = by_store.get(day, 0) + 1
    assert {d: s["s1"][0] for d, s in h.stores.items()} == by_store
    assert all(e[4] in ("", "s1") for e in h.enrollments)  # the tier, "" when none


def test_the_tier_follows_the_latest_enrollment_and_only_a_member_has_one() -> None:
    h = CustomerHistory()
    h.add(Enrollment("e1", "c", 5 * DAY_MS, "member", "gold"), 5)
    h.add(Enrollment("e2", "c", 9 * DAY_MS, "control", "gold"), 9)
    h.add(Enrollment("e3", "c", 7 * DAY_MS, "member", None), 7)
    assert h.segment_and_tier(4) == ("non_member", "")
    assert h.segment_and_tier(5) == ("member", "gold")
    assert h.segment_and_tier(7) == ("member", "")  # the latest names no tier
    assert h.segment_and_tier(9) == ("control", "")  # a control customer has none
