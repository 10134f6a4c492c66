"""Two spike detectors judging the same day at once over a real Redis raise it once.

The simulated spike through a worker process is in tests/e2e/test_alerts.py.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from stream_app.alerts import AlertStore, SpikeMonitor
from stream_app.kpi.days import from_date, to_date
from stream_app.serving import ServingStore
from tests.conftest import new_settings


def test_two_workers_judging_at_once_raise_a_day_once(redis_url: str, tmp_path: Path) -> None:
    settings = new_settings("127.0.0.1:1", redis_url, tmp_path, "spike-race")
    first_day = from_date(datetime(2025, 1, 1, tzinfo=UTC).date())

    async def run() -> list[tuple[bytes, bytes]]:
        store = ServingStore.connect(redis_url, settings.app_id, 400)
        try:
            for n in range(40):  # 2 % churn, then 5 % from day 35
                churned = 50 if n >= 35 else 20
                day = first_day + n
                churn = {"churned": churned, "customers_at_start": 1000}
                await store.store_final(day, {"as_of": to_date(day).isoformat(), "churn": churn})
            sent: list[tuple[bytes, bytes]] = []

            async def send(key: bytes, value: bytes) -> None:
                sent.append((key, value))

            monitors = [SpikeMonitor(settings, AlertStore(store)) for _ in range(3)]
            await asyncio.gather(*(m.check(first_day + 39, send) for m in monitors))
            await asyncio.gather(*(m.check(first_day + 39, send) for m in monitors))
            return sent
        finally:
            await store.r.delete(*[k async for k in store.r.scan_iter(f"{store.prefix}*")])
            await store.close()

    sent = asyncio.run(run())
    assert [key for key, _ in sent] == [b"churn_spike:2025-02-05:raised"]
