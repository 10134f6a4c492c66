"""The boundary index against a dict of sets."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from stream_app.contract import MAX_ID_CHARS
from stream_app.kpi.day_index import DayIndex

ids = st.text(min_size=1, max_size=MAX_ID_CHARS)  # any character a customer_id may hold


@given(st.lists(st.tuples(st.integers(0, 5), ids), max_size=60), st.sets(st.integers(0, 5)))
def test_the_index_answers_as_a_dict_of_sets(
    added: list[tuple[int, str]], popped: set[int]
) -> None:
    index, model = DayIndex(), {}
    for day, customer in added:
        index.add(day, customer)
        model.setdefault(day, set()).add(customer)
    assert sorted(index.days()) == sorted(model)
    for day in range(7):
        assert index.customers(day) == model.get(day, set())
    for day in popped:
        assert index.pop(day) == model.pop(day, set())
    assert sorted(index) == sorted(model)
    for day, customer in added:  # days popped take new entries again
        index.add(day, customer)
        model.setdefault(day, set()).add(customer)
    assert {d: index.customers(d) for d in index} == model


def test_an_entry_costs_its_bytes_and_two() -> None:
    index = DayIndex()
    for n in range(1000):
        index.add(1, f"c{n:06d}")
        index.add(1, f"c{n:06d}")  # a second event the same day: not listed again
    assert index.bytes == 1000 * (7 + 2)
