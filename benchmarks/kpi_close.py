"""Day-close benchmark: the KPI engine alone, no broker, no worker.

N customers x E purchases each over D days (random days, fixed seed), fed to
one ``KpiPartition`` day by day, each day closed after its events, then more
days closed with no events (the later boundaries: 90, 91, 119, 120 days...).
Prints microseconds per event spent adding and closing, and contributions
computed per event, twice in one run: closing with only the parts a
boundary can move (``boundary_parts``, what the worker does) and with every
part (what it did before), and the ratio. Both runs must give the same terms.
Not a test: figures depend on the machine. ``benchmarks/scale.py`` measures
the whole worker.

    python -m benchmarks.kpi_close                      # 100k customers x 2 over 60 days
    python -m benchmarks.kpi_close --customers 20000 --events 14 --after 400
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from stream_app.contract import Purchase
from stream_app.kpi import contribution, engine
from stream_app.kpi.engine import KpiPartition
from stream_app.kpi.params import KpiParams
from stream_app.kpi.terms import KpiTerms

DAY_MS = 86_400_000
FIRST_DAY = 20_000  # 2024-10-04


@dataclass(frozen=True)
class Run:
    add_s: float
    close_s: float
    contributions: int
    terms: KpiTerms


def purchases(customers: int, each: int, days: int, seed: int) -> list[tuple[int, Purchase]]:
    rng = random.Random(seed)
    out = []
    for c in range(customers):
        for n in range(each):
            day = FIRST_DAY + rng.randrange(days)
            ms = day * DAY_MS + rng.randrange(DAY_MS)
            amount = rng.randrange(100, 20_000)
            event = Purchase(
                f"e{c}-{n}", f"c{c}", ms, amount, f"o{c}-{n}", "web", "s1", amount // 100
            )
            out.append((day, event))
    out.sort(key=lambda pair: pair[1].occurred_ms)
    return out


@contextmanager
def counted_contributions() -> Iterator[Callable[[], int]]:
    """Count add_contribution calls made by the engine meanwhile."""
    calls = 0
    original = engine.add_contribution

    def counting(*args: object, **kwargs: object) -> None:
        nonlocal calls
        calls += 1
        original(*args, **kwargs)  # type: ignore[arg-type]

    engine.add_contribution = counting  # type: ignore[assignment]
    try:
        yield lambda: calls
    finally:
        engine.add_contribution = original


@contextmanager
def every_part() -> Iterator[None]:
    """Close as before boundary_parts: every part of every touched customer."""
    original = engine.boundary_parts

    def all_parts(params: KpiParams) -> dict[int, int]:
        return dict.fromkeys(params.boundaries, contribution.ALL)

    engine.boundary_parts = all_parts
    try:
        yield
    finally:
        engine.boundary_parts = original


def run(events: list[tuple[int, Purchase]], days: int, after: int) -> Run:
    part = KpiPartition(KpiParams(), FIRST_DAY - 1)
    add_s = close_s = 0.0
    i = 0
    with counted_contributions() as calls:
        for day in range(FIRST_DAY, FIRST_DAY + days + after):
            t0 = time.perf_counter()
            while i < len(events) and events[i][0] == day:
                part.add(events[i][1], day)
                i += 1
            t1 = time.perf_counter()
            part.close(day)
            close_s += time.perf_counter() - t1
            add_s += t1 - t0
        return Run(add_s, close_s, calls(), part.terms)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=2, help="purchases per customer")
    parser.add_argument("--days", type=int, default=60, help="days the purchases span")
    parser.add_argument("--after", type=int, default=100, help="days closed after the last")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    events = purchases(args.customers, args.events, args.days, args.seed)
    n = len(events)
    parts = run(events, args.days, args.after)
    with every_part():
        every = run(events, args.days, args.after)
    if parts.terms != every.terms:
        raise SystemExit("closing by boundary parts gave other terms than closing every part")
    print(
        f"{args.customers:,} customers x {args.events} purchases over {args.days} days, "
        f"{args.days + args.after} days closed"
    )
    print(f"{'':24} {'add µs/ev':>10} {'close µs/ev':>12} {'contributions/ev':>17}")
    for label, r in (("boundary parts", parts), ("every part", every)):
        print(
            f"{label:24} {r.add_s / n * 1e6:10.2f} {r.close_s / n * 1e6:12.2f} "
            f"{r.contributions / n:17.2f}"
        )
    print(f"close time, boundary parts / every part: {parts.close_s / every.close_s:.2f}")


if __name__ == "__main__":
    main()
