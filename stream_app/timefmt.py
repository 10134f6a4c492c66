"""Instants as the HTTP documents write them."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_ms(ms: int | None) -> str | None:
    """Epoch milliseconds as ISO 8601 UTC with a Z, e.g. 1998-07-02T10:00:00.000Z."""
    if ms is None:
        return None
    return (
        datetime.fromtimestamp(ms / 1000, tz=UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )
