"""Fixtures of the day-close harness tests (test_day_close.py, test_refill.py): their
settings, and a serving store whose keys are deleted after the test. A module
with fixtures of the same names (test_serving.py, test_state_layout.py) uses its own."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from stream_app.serving import ServingStore
from stream_app.settings import Settings
from tests.integration.test_day_close import settings_for


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return settings_for(redis_url)


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[ServingStore]:
    s = ServingStore.connect(settings.redis_url, settings.app_id, settings.history_days)
    yield s
    keys = [k async for k in s.r.scan_iter(match=s.prefix + "*")]
    if keys:
        await s.r.delete(*keys)
    await s.close()
