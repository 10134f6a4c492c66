"""Typed KPI terms: the additive parts of every count and sum of spec §3.

One customer's contribution and a partition's totals have the same type,
``KpiTerms``; totals are sums of contributions, and partitions merge by adding
(a customer lives in exactly one). Each group is a small dataclass declared
with ``@group``: its fields are counts (``int``), groups, or groups by name
(``dict[str, Group]``), and ``@group`` compiles ``add`` (merge with a sign)
from that declaration; ``copy`` and the JSON form follow it too. Adding a KPI
is a field here, its term in contribution.py and its formula in report.py; a
misspelt field is an AttributeError, never a silent 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import (
    Any,
    ClassVar,
    Self,
    TypeVar,
    dataclass_transform,
    get_args,
    get_origin,
    get_type_hints,
)

from stream_app.kpi.params import CLV_WINDOW

Json = dict[str, Any]
G = TypeVar("G", bound="Group")
# JSON encoders (orjson) take 64-bit integers only; a sum of squares can exceed that.
_INT64 = 2**63


class Group:
    """The base of every group (declared with ``@group``, which generates ``add``)."""

    __slots__ = ()
    KINDS: ClassVar[dict[str, tuple[str, Any]]] = {}

    def add(self, other: Self, sign: int = 1) -> None:
        raise NotImplementedError("declare the class with @group")

    def copy(self) -> Self:
        out = type(self)()
        out.add(self)
        return out

    def to_json(self) -> Json:
        """Non-zero counts and non-empty groups only."""
        out: Json = {}
        for name, (kind, _) in self.KINDS.items():
            value = getattr(self, name)
            if kind == "count":
                if value:
                    out[name] = value if -_INT64 <= value < _INT64 else str(value)
            elif kind == "sub":
                if inner := value.to_json():
                    out[name] = inner
            elif groups := {str(k): j for k, g in value.items() if (j := g.to_json())}:
                out[name] = groups
        return out

    @classmethod
    def from_json(cls, data: Json) -> Self:
        out = cls()
        for name, value in data.items():
            kind, spec = cls.KINDS[name]
            if kind == "count":
                setattr(out, name, int(value))  # a str beyond 64 bits (to_json)
            elif kind == "sub":
                setattr(out, name, spec.from_json(value))
            else:
                inner, key = spec
                setattr(out, name, {key(k): inner.from_json(v) for k, v in value.items()})
        return out


@dataclass_transform()
def group(cls: type[G]) -> type[G]:
    """A slotted dataclass whose ``add`` is compiled from its field declarations
    (once, as dataclasses builds ``__init__``): ``int`` fields are counts, a
    ``Group`` field a sub-group, a ``dict[key, Group]`` field a group per key."""
    cls = dataclass(slots=True)(cls)
    hints = get_type_hints(cls)
    kinds = {f.name: _kind(hints[f.name]) for f in fields(cls)}  # type: ignore[arg-type]
    lines = ["def add(self, other, sign=1):"]
    for name, (kind, _) in kinds.items():
        if kind == "count":
            lines.append(f"    self.{name} += sign * other.{name}")
        elif kind == "sub":
            lines.append(f"    self.{name}.add(other.{name}, sign)")
        else:
            lines.append(f"    _add_each(self.{name}, other.{name}, sign, _KINDS[{name!r}][1][0])")
    namespace: dict[str, Any] = {"_add_each": _add_each, "_KINDS": kinds}
    exec("\n".join(lines), namespace)  # noqa: S102 - code built from our own field names
    cls.KINDS = kinds
    cls.add = namespace["add"]  # type: ignore[method-assign]
    return cls


def _kind(hint: Any) -> tuple[str, Any]:
    if hint is int:
        return ("count", None)
    if get_origin(hint) is dict:
        key, value = get_args(hint)
        return ("each", (value, key))
    return ("sub", hint)


def _add_each(mine: dict[Any, Any], theirs: dict[Any, Any], sign: int, cls: type) -> None:
    for key, other in theirs.items():
        target = mine.get(key)
        if target is None:
            target = mine[key] = cls()
        target.add(other, sign)


@group
class Count(Group):
    n: int = 0


@group
class Stats(Group):
    """Purchases of a set of customers in a window."""

    orders: int = 0
    revenue: int = 0  # minor units
    active: int = 0  # customers with >= 1 purchase
    repeat: int = 0  # customers with >= 2 purchases
    # Sum over the customers of their revenue squared (minor units squared; kept
    # for segments only: the lift's variances, spec §3.6).
    revenue_sq: int = 0


@group
class WindowTerms(Group):
    purchases: Stats = field(default_factory=Stats)
    segments: dict[str, Stats] = field(default_factory=dict)  # by segment as of the day
    channels: dict[str, Stats] = field(default_factory=dict)
    tiers: dict[str, Stats] = field(default_factory=dict)  # by tier as of the day
    stores: dict[str, Stats] = field(default_factory=dict)
    # Customers whose second purchase is in the window, by days from their first.
    second_gaps: dict[int, Count] = field(default_factory=dict)
    points_issued: int = 0
    points_redeemed: int = 0
    redeeming: int = 0  # customers with >= 1 redemption
    reward_minor: int = 0  # reward value of redemptions that carry one
    unpriced_points: int = 0  # redeemed points without a reward value
    active_members: int = 0
    new_enrollments: int = 0


@group
class ChurnTerms(Group):
    customers_at_start: int = 0
    active_at_end: int = 0
    churned: int = 0
    new_customers: int = 0
    value_at_start: int = 0
    value_churned: int = 0
    churned_on_day: int = 0
    # Customers with an event on or before D - P - T + 1: history_complete iff > 0
    # (spec §3.2: the stream's first day F is then on or before that day).
    early_customers: int = 0


@group
class ProgramTerms(Group):
    members_total: int = 0
    control_total: int = 0
    outstanding_points: int = 0
    # Customers of segment non_member with a purchase: the lift's non_member group.
    non_member_buyers: int = 0
    members_by_tier: dict[str, Count] = field(default_factory=dict)


@group
class Activity(Group):
    """A cohort's customers with a purchase in one month, and their revenue then."""

    active: int = 0
    revenue: int = 0  # minor units


@group
class CohortTerms(Group):
    size: int = 0
    months: dict[int, Activity] = field(default_factory=dict)  # by months since the cohort's


@group
class KpiTerms(Group):
    windows: dict[int, WindowTerms] = field(default_factory=dict)
    churn: ChurnTerms = field(default_factory=ChurnTerms)
    program: ProgramTerms = field(default_factory=ProgramTerms)
    # By the month of the customers' first purchase (months since 1970-01).
    cohorts: dict[int, CohortTerms] = field(default_factory=dict)

    def window(self, w: int) -> WindowTerms:
        """Window ``w``'s terms (all zero when nothing counted in it)."""
        terms = self.windows.get(w)
        return WindowTerms() if terms is None else terms


def merge(partials: Iterable[KpiTerms]) -> KpiTerms:
    """Sum the terms of several partitions (a customer lives in exactly one)."""
    merged = KpiTerms()
    for terms in partials:
        merged.add(terms)
    return merged


# --- the flat form of state version <= 3 (metas, Redis partials and previews) ---

_WINDOW_STATS = {"orders": "orders", "revenue": "revenue", "active": "active", "repeat": "repeat"}


def from_flat(rows: Iterable[tuple[tuple[Any, ...], int]]) -> KpiTerms:
    """Terms written as ((kind, ...key), value) pairs before they were typed."""
    terms = KpiTerms()
    for key, value in rows:
        kind, rest = key[0], key[1:]
        if kind == "w":
            window, name = _window(terms, rest[0]), rest[1]
            target = (
                window.purchases if name in ("orders", "revenue", "active", "repeat") else window
            )
            setattr(target, name, value)
        elif kind in ("seg", "ch"):
            window = _window(terms, rest[0])
            by_name = window.segments if kind == "seg" else window.channels
            setattr(by_name.setdefault(str(rest[1]), Stats()), rest[2], value)
        elif kind == "churn":
            setattr(terms.churn, rest[0], value)
        elif rest[0] in _FLAT_COST:
            setattr(_window(terms, CLV_WINDOW), _FLAT_COST[rest[0]], value)
        else:
            setattr(terms.program, rest[0], value)
    return terms


_FLAT_COST = {"cost_reward_minor": "reward_minor", "cost_unpriced_points": "unpriced_points"}


def _window(terms: KpiTerms, w: int) -> WindowTerms:
    window = terms.windows.get(int(w))
    if window is None:
        window = terms.windows[int(w)] = WindowTerms()
    return window
