"""Deterministic generator of realistic loyalty-program traffic.

Pure: no I/O, no sleeping, no wall clock (except the default ``start``); the
caller paces the events. One ``random.Random(seed)`` drives everything, so an
equal config yields an identical event sequence.

Traffic model (event time, integer epoch milliseconds):

* ``customers`` customers form the initial population: 70 % are already
  shopping at ``start`` (first purchase after a memoryless wait), 30 % join
  uniformly over the first year (or over ``days`` when shorter), so monthly
  cohorts keep filling. :data:`ONE_TIME_SHARE` of the customers who join
  (not of those already shopping) buy once and never come back.
* Each customer has a mean inter-purchase time drawn log-normally (median
  22 days, clipped to 3..120 days); gaps are exponential around it. Basket
  sizes are log-normal per customer (median ~35 USD); 0.5 % of orders are
  zero-value.
* Churn: 25 % of customers never churn; the others stop buying after an
  exponential lifetime (mean 540 days) from their first purchase. Every
  churned customer is replaced by a newcomer (new ``customer_id``) about 45
  days later, so the active population stays near ``customers``.
* Enrollment: ``enrollment_share`` of customers enroll once, at their first
  purchase (30 %) or some weeks later; ``control_share`` of them are held out
  as cohort ``control`` by a random draw, so control and members are alike
  until the program acts. 5 % of control customers are later re-enrolled as
  ``member``. A member enrollment has a ``tier`` that follows the customer's
  expected spend, blurred: ``gold`` (~10 %), ``silver`` (~23 %), ``bronze``.
* The program's effect, modest and noisy: from their member enrollment on,
  customers buy :data:`MEMBER_GAP_FACTOR` times as far apart (11 % more
  orders) and their remaining lifetime is :data:`MEMBER_LIFE_FACTOR` times
  as long. Over a year members spend ~12 % more than control (intention to
  treat), against a customer-to-customer spread of more than 100 %.
* Points, only while the latest enrollment is ``member``: :data:`EARN_RATE`
  points per whole USD by tier, doubled on 10 % of orders. After an order,
  a member with >= 100 unredeemed points redeems a reward of
  :data:`REWARDS` a few days later, half of the time; rewards cost ~1.8 % of
  member revenue.
* Channels ``pos`` / ``web`` / ``app``: per-customer web propensity with mean
  ``web_share``; the rest is mostly ``pos``, members use the app more. A
  ``pos`` order has a ``store_id``, ``s01`` .. ``s32`` (:data:`STORES`, of
  skewed sizes: the largest draws ~9 times the customers of the smallest),
  mostly the customer's home store; web and app orders have none.
* Churn spike: if ``churn_spike_at`` is set, during ``spike_days`` days from
  that (UTC) day each customer's first purchase in the window is, with
  probability ``spike_strength``, dropped and the customer churns for good;
  their replacements only arrive after the window.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import itertools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

import orjson

DAY_MS = 86_400_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DATE = _EPOCH.date()
_PURCHASE, _ENROLL, _REDEEM = 0, 1, 2
_GAP_DAYS = 22.0  # median over customers of their mean time between orders

STORES = 32
"""Stores; store k (0-based) draws customers in proportion to 1 / (k + 4)."""
_STORE_CUM = tuple(itertools.accumulate(1 / (k + 4) for k in range(STORES)))
EARN_RATE = {"bronze": 1.0, "silver": 2.0, "gold": 3.0}
"""Points per whole USD, by tier."""
POINT_VALUE = 0.01
"""USD a point is worth at the till: the engine's default point value."""
REWARDS: dict[int, float | None] = {100: None, 250: 3.0, 500: 7.0, 1000: 15.0}
"""Rewards: points -> ``reward_value`` (USD, what the reward costs the business).
Bigger rewards are better value; 100 points are paid at the till, sent without a
``reward_value`` (so they cost ``points`` x :data:`POINT_VALUE`)."""
MEMBER_GAP_FACTOR = 0.9
"""A member's mean time between orders, relative to before enrolling."""
MEMBER_LIFE_FACTOR = 1.2
"""A member's remaining lifetime (until churn), relative to before enrolling."""
ONE_TIME_SHARE = 0.35
"""Share of joining customers who buy once and never return."""


def _default_start() -> datetime:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=365)


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    """``customers`` is the initial population (churned ones get replaced by new ids);
    ``start`` must be tz-aware; ``days`` None = endless; ``churn_spike_at`` is a UTC day."""

    customers: int = 2000
    seed: int = 42
    start: datetime = field(default_factory=_default_start)
    days: float | None = None
    control_share: float = 0.1
    enrollment_share: float = 0.6
    web_share: float = 0.35
    churn_spike_at: date | None = None
    spike_strength: float = 0.5
    spike_days: int = 14

    def __post_init__(self) -> None:
        if self.customers < 0 or self.spike_days < 0:
            raise ValueError("customers and spike_days must be >= 0")
        if self.start.tzinfo is None or self.start.utcoffset() is None:
            raise ValueError("start must be timezone-aware")
        if self.days is not None and not (0 <= self.days < math.inf):
            raise ValueError("days must be finite and >= 0")
        shares = (self.control_share, self.enrollment_share, self.web_share, self.spike_strength)
        if not all(0.0 <= s <= 1.0 for s in shares):
            raise ValueError("shares and spike_strength must be within [0, 1]")

    @property
    def run_id(self) -> str:
        """Fingerprint of everything that shapes the traffic (``days`` only cuts it).

        Event ids carry it: the same config re-sends the same events (true
        redeliveries), a different config never reuses an id for another event.
        """
        shape = [getattr(self, f) for f in self.__slots__ if f != "days"]
        return hashlib.blake2b(repr(shape).encode(), digest_size=4).hexdigest()


class _Customer:
    __slots__ = (
        "cid",
        "gap",
        "mu",
        "sigma",
        "web_p",
        "store",
        "end",
        "cohort",
        "plan",
        "tier",
        "balance",
        "pending",
        "spike_seen",
    )

    def __init__(self, cid: str, rng: random.Random) -> None:
        self.cid = cid
        days = min(max(rng.lognormvariate(math.log(_GAP_DAYS), 0.6), 3.0), 120.0)
        self.gap = days * DAY_MS
        self.mu = rng.gauss(math.log(35.0), 0.4)
        self.sigma = rng.uniform(0.3, 0.8)
        self.web_p = 0.0
        self.store = _store(rng)
        self.end = math.inf
        self.cohort = ""  # latest enrollment's cohort, "" = non-member
        self.plan = ""  # cohort of the scheduled enrollment
        # tier by expected spend (basket and frequency), blurred: z is ~N(0, 1.6)
        z = (self.mu - math.log(35.0)) / 0.4 - math.log(days / _GAP_DAYS) / 0.6
        z += rng.gauss(0, 0.7)
        self.tier = "gold" if z > 2.0 else "silver" if z > 0.7 else "bronze"
        self.balance = 0
        self.pending = False
        self.spike_seen = False


def _store(rng: random.Random) -> str:
    k = bisect.bisect(_STORE_CUM, rng.random() * _STORE_CUM[-1])
    return f"s{min(k, STORES - 1) + 1:02d}"


class _Sim:
    def __init__(self, cfg: SimulationConfig) -> None:
        self.cfg = cfg
        self.run_id = cfg.run_id

        self.rng = random.Random(cfg.seed)  # S311: reproducible simulation, not crypto
        self.t0 = (cfg.start - _EPOCH) // timedelta(milliseconds=1)
        self.t_end = math.inf if cfg.days is None else self.t0 + round(cfg.days * DAY_MS)
        spike = cfg.churn_spike_at
        lo = 0 if spike is None else (spike - _EPOCH_DATE).days * DAY_MS
        self.spike = (lo, lo + cfg.spike_days * DAY_MS) if spike is not None else (0, 0)
        self.heap: list[tuple[int, int, int, _Customer]] = []
        self.seq = 0
        self.n = 0
        self.next_cid = 0
        self.day = -1
        self.prefix = ""

    def push(self, t: int, kind: int, c: _Customer) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, kind, c))

    def populate(self) -> None:
        rng, t0 = self.rng, self.t0
        horizon = min(self.cfg.days or 365.0, 365.0) * DAY_MS
        for _ in range(self.cfg.customers):
            if rng.random() < 0.7:
                self.add_customer(t0, existing=True)
            else:
                self.add_customer(t0 + int(rng.random() * horizon), existing=False)

    def add_customer(self, join: int, existing: bool) -> None:
        rng, cfg = self.rng, self.cfg
        c = _Customer(f"c{self.next_cid:06d}", rng)
        self.next_cid += 1
        w = cfg.web_share
        c.web_p = w if w in (0.0, 1.0) else rng.betavariate(4 * w, 4 * (1 - w))
        first = join + (int(rng.expovariate(1.0) * c.gap) if existing else 0)
        if not existing and rng.random() < ONE_TIME_SHARE:
            c.end = first  # buys once
        elif rng.random() >= 0.25:
            c.end = first + rng.expovariate(1.0) * 540 * DAY_MS
        if rng.random() < cfg.enrollment_share:
            c.plan = "control" if rng.random() < cfg.control_share else "member"
            at = first - 1 if rng.random() < 0.3 else first + self.later(first, c.end, 60)
            self.push(max(at, join), _ENROLL, c)  # pushed first: wins a tie with `first`
        self.push(first, _PURCHASE, c)

    def later(self, now: float, end: float, mean_days: float) -> int:
        """A random delay of ~mean_days, kept within the first half of the remaining life."""
        return int(min(self.rng.expovariate(1.0) * mean_days * DAY_MS, (end - now) / 2)) + 1

    def stamp(self, t: int) -> str:
        day, rem = divmod(t, DAY_MS)
        if day != self.day:
            self.day = day
            self.prefix = (_EPOCH_DATE + timedelta(days=day)).isoformat() + "T"
        s, ms = divmod(rem, 1000)
        m, s = divmod(s, 60)
        h, m = divmod(m, 60)
        return f"{self.prefix}{h:02d}:{m:02d}:{s:02d}.{ms:03d}Z"

    def base(self, kind: str, c: _Customer, t: int) -> dict[str, object]:
        self.n += 1
        return {
            "type": kind,
            "event_id": f"sim-{self.run_id}-{self.n}",
            "customer_id": c.cid,
            "occurred_at": self.stamp(t),
        }

    def churn(self, c: _Customer, t: int) -> None:
        c.end = min(c.end, t)
        lo, hi = self.spike
        after = hi if lo <= t < hi else t
        self.add_customer(after + int(self.rng.expovariate(1.0) * 45 * DAY_MS), existing=False)

    def spike_hit(self, c: _Customer, t: int) -> bool:
        lo, hi = self.spike
        if c.spike_seen or not lo <= t < hi:
            return False
        c.spike_seen = True
        return self.rng.random() < self.cfg.spike_strength

    def on_purchase(self, c: _Customer, t: int) -> dict[str, object] | None:
        if t > c.end or self.spike_hit(c, t):
            self.churn(c, t)
            return None
        rng = self.rng
        member = c.cohort == "member"
        amount = 0.0 if rng.random() < 0.005 else round(rng.lognormvariate(c.mu, c.sigma), 2)
        ev = self.base("purchase", c, t)
        ev["amount"] = min(amount, 1e9)
        if rng.random() < 0.7:
            ev["currency"] = "USD"
        self.add_channel(ev, c, member)
        if member:
            self.earn(ev, c, t, int(int(amount) * EARN_RATE[c.tier]))
        gap = c.gap * (MEMBER_GAP_FACTOR if member else 1.0)
        self.push(t + int(rng.expovariate(1.0) * gap) + 1, _PURCHASE, c)
        return ev

    def add_channel(self, ev: dict[str, object], c: _Customer, member: bool) -> None:
        r = self.rng.random()
        app = (1 - c.web_p) * (0.3 if member else 0.1)
        if r < c.web_p + app:
            ev["channel"] = "web" if r < c.web_p else "app"
            ev["order_id"] = f"o-{self.cfg.seed}-{self.n}"
            return
        ev["channel"] = "pos"
        ev["store_id"] = c.store if self.rng.random() < 0.85 else _store(self.rng)

    def earn(self, ev: dict[str, object], c: _Customer, t: int, points: int) -> None:
        rng = self.rng
        if rng.random() < 0.1:
            points *= 2
        ev["points_earned"] = points
        c.balance += points
        if c.balance >= min(REWARDS) and not c.pending and rng.random() < 0.5:
            c.pending = True
            self.push(t + int(rng.expovariate(1.0) * 3 * DAY_MS) + 1, _REDEEM, c)

    def on_enroll(self, c: _Customer, t: int) -> dict[str, object] | None:
        if t > c.end:
            return None
        c.cohort = c.plan
        ev = self.base("enrollment", c, t)
        ev["cohort"] = c.cohort
        if c.cohort == "member":
            c.end = t + (c.end - t) * MEMBER_LIFE_FACTOR
            ev["tier"] = c.tier
            ev["program"] = "pulse-rewards"
        elif self.rng.random() < 0.05:
            c.plan = "member"
            self.push(t + self.later(t, c.end, 120), _ENROLL, c)
        return ev

    def on_redeem(self, c: _Customer, t: int) -> dict[str, object] | None:
        c.pending = False
        options = [p for p in REWARDS if p <= c.balance]
        if not options or c.cohort != "member":
            return None
        rng = self.rng
        points = options[-1] if rng.random() < 0.5 else rng.choice(options)
        c.balance -= points
        ev = self.base("redemption", c, t)
        ev["points"] = points
        ev["reward_id"] = f"r{points}"
        value = REWARDS[points]
        if value is not None:
            ev["reward_value"] = value
        return ev

    def run(self) -> Iterator[dict[str, object]]:
        self.populate()
        heap, handlers = self.heap, (self.on_purchase, self.on_enroll, self.on_redeem)
        while heap:
            t, _, kind, c = heapq.heappop(heap)
            if t >= self.t_end:
                return
            ev = handlers[kind](c, t)
            if ev is not None:
                yield ev


def generate(config: SimulationConfig) -> Iterator[dict[str, object]]:
    """Yield events (JSON-ready dicts with a ``type``) in non-decreasing event time."""
    return _Sim(config).run()


def to_json_line(event: dict[str, object]) -> bytes:
    """One JSON Lines record: the event as compact JSON plus a newline."""
    return orjson.dumps(event) + b"\n"


@lru_cache(maxsize=4096)
def _day_ms(day: str) -> int:
    return (date.fromisoformat(day) - _EPOCH_DATE).days * DAY_MS


def event_time_ms(event: dict[str, object]) -> int:
    """Epoch milliseconds of ``occurred_at`` as written by :func:`generate`."""
    s = event["occurred_at"]
    if isinstance(s, int) and not isinstance(s, bool):
        return s
    if not isinstance(s, str) or len(s) != 24 or s[10] != "T" or s[23] != "Z":
        raise ValueError(f"not a simulator timestamp: {s!r}")
    return (
        _day_ms(s[:10])
        + int(s[11:13]) * 3_600_000
        + int(s[14:16]) * 60_000
        + int(s[17:19]) * 1000
        + int(s[20:23])
    )
