"""Pins how our tables are wired into Faust (serializers, changelog topic)."""

from __future__ import annotations

import orjson

from stream_app.contract import MAX_ID_CHARS
from stream_app.keys import CLOSED_TERMS, MetaKey
from stream_app.kpi.contribution import contribution
from stream_app.kpi.customer import CustomerState, id_digest
from stream_app.kpi.history import CustomerHistory
from stream_app.kpi.meta import ClosedTerms, PartitionMeta
from stream_app.kpi.params import KpiParams
from stream_app.settings import Settings
from stream_app.worker import build
from tables import codecs


def test_tables_use_our_codecs_for_store_and_changelog(tmp_path) -> None:
    worker = build(Settings(store="memory", data_dir=tmp_path, app_id="pin"))
    for table, key_codec, codec in (
        (worker.tables.customers, codecs.STATE_KEY, codecs.CUSTOMER),
        (worker.tables.rejections, codecs.UTF8, codecs.LEDGER),
    ):
        topic = table.changelog_topic
        assert (table.key_serializer, table.value_serializer) == (key_codec, codec)
        assert (topic.key_serializer, topic.value_serializer) == (key_codec, codec)
        assert topic.get_topic_name() == f"pin-{table.name}-changelog"
        assert topic.acks and topic.compacting and topic.partitions == 8


def _history(tier: str = "gold", stores: bool = True) -> CustomerHistory:
    """A history whose oldest days were pruned (first purchase and points carried)."""
    return CustomerHistory(
        purchases={19_000: {"web": [1, 1999, 20]}, 19_003: {"pos": [2, 500, 0], "web": [1, 1, 1]}},
        redemptions={19_001: [100, 250, 0], 19_004: [50, 0, 50]},
        enrollments=[(19_000, 1_641_600_000_000, "en-1", "member", tier)],
        first_purchase_day=18_990,
        second_purchase_day=19_000,
        first_event_day=18_990,
        carried_points=-7,
        stores={19_003: {"s1": [2, 500]}} if stores else {},
    )


def test_a_partition_meta_key_round_trips_and_no_customer_id_reads_as_one() -> None:
    codecs.register()
    codec = codecs.StateKeyCodec()
    assert codec.loads(codec.dumps(MetaKey(7))) == MetaKey(7)
    assert codec.dumps(MetaKey(7)).endswith(b"~/7")  # as every version wrote it
    assert codec.loads(codec.dumps(MetaKey(7, CLOSED_TERMS))) == MetaKey(7, CLOSED_TERMS)
    assert codec.loads(codec.dumps("alice")) == "alice"
    longest = "~" * MAX_ID_CHARS
    assert codec.loads(codec.dumps(longest)) == longest


def test_customer_codec_round_trips() -> None:
    codecs.register()
    codec = codecs.CustomerCodec()
    state = CustomerState(
        purchases=4,
        revenue_minor=2500,
        recent_ids={id_digest("e1"): 5, 2**64 - 1: 1_700_000_000_000},
        applied_offsets={"purchases/3": 17},
        history=_history(),
    )
    assert codec.loads(codec.dumps(state)) == state
    meta = PartitionMeta(19_000, {}, {"purchases/3": 1_700_000_000_000})
    assert codec.loads(codec.dumps(meta)) == meta
    terms = contribution(_history(), 19_004, KpiParams())
    closed = codec.loads(codec.dumps(ClosedTerms(19_004, terms)))
    assert closed == ClosedTerms(19_004, terms) and closed.terms.windows


def _v4_record() -> dict[str, object]:
    """A customer record as version 4 wrote it (JSON, event ids in clear)."""
    return {
        "v": 4,
        "purchases": 4,
        "enrollments": 1,
        "redemptions": 2,
        "revenue_minor": 2500,
        "points_earned": 21,
        "points_redeemed": 150,
        "recent_ids": {"e1": 5, "en-1": 1_641_600_000_000},
        "applied_offsets": {"purchases/3": 17},
        "history": {
            "p": {"19000": {"web": [1, 1999, 20]}, "19003": {"pos": [2, 500, 0], "web": [1, 1, 1]}},
            "r": {"19001": [100, 250, 0], "19004": [50, 0, 50]},
            "e": [[19_000, 1_641_600_000_000, "en-1", "member", "gold"]],
            "f": 18_990,
            "c": -7,
            "s": {"19003": {"s1": [2, 500]}},
            "q": 19_000,
            "g": 18_990,
        },
    }


def test_a_version_4_json_record_reads_and_is_rewritten_as_version_5() -> None:
    codec = codecs.CustomerCodec()
    state = codec.loads(orjson.dumps(_v4_record()))
    assert state == CustomerState(
        purchases=4,
        enrollments=1,
        redemptions=2,
        revenue_minor=2500,
        points_earned=21,
        points_redeemed=150,
        recent_ids={id_digest("e1"): 5, id_digest("en-1"): 1_641_600_000_000},
        applied_offsets={"purchases/3": 17},
        history=_history(),
    )
    assert state.has_seen(id_digest("en-1")) and not state.has_seen(id_digest("e2"))
    rewritten = codec.dumps(state)
    assert rewritten[:1] != b"{" and codec.loads(rewritten) == state
    assert len(rewritten) < len(orjson.dumps(_v4_record())) / 2


def test_customer_state_version_2_rows_are_still_read() -> None:
    # version 2 kept no tier, stores, second purchase or first event day: the
    # last two are derived from what it kept
    state = CustomerState(purchases=4, revenue_minor=2500, history=_history("", stores=False))
    stored_v2 = _v4_record() | {
        "v": 2,
        "enrollments": 0,
        "redemptions": 0,
        "points_earned": 0,
        "points_redeemed": 0,
        "recent_ids": {},
        "applied_offsets": {},
        "history": {
            "p": [
                [19_000, "web", 1, 1999, 20],
                [19_003, "pos", 2, 500, 0],
                [19_003, "web", 1, 1, 1],
            ],
            "r": [[19_001, 100, 250, 0], [19_004, 50, 0, 50]],
            "e": [[19_000, 1_641_600_000_000, "en-1", "member"]],
            "f": 18_990,
            "c": -7,
        },
    }
    assert codecs.CustomerCodec().loads(orjson.dumps(stored_v2)) == state


def test_changelog_end_markers_follow_the_broker_in_auto_mode() -> None:
    from stream_app.topics import EMBEDDED_CLUSTER_ID
    from stream_app.worker import wants_end_markers

    auto, on, off = (Settings(changelog_end_markers=m) for m in ("auto", "on", "off"))
    assert wants_end_markers(auto, EMBEDDED_CLUSTER_ID)
    assert not wants_end_markers(auto, "kafka-prod-cluster")
    assert not wants_end_markers(auto, None)
    assert wants_end_markers(on, "kafka-prod-cluster")
    assert not wants_end_markers(off, EMBEDDED_CLUSTER_ID)


def test_reserved_keys_can_never_be_customer_ids() -> None:
    from stream_app.contract import MAX_ID_CHARS
    from stream_app.keys import END_MARKER_KEY, META_KEY_PREFIX

    assert len(META_KEY_PREFIX) > MAX_ID_CHARS and len(END_MARKER_KEY) > MAX_ID_CHARS


def test_kpi_settings_are_validated_at_start_with_the_reason() -> None:
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="T \\(30\\) must exceed the churn period P"):
        Settings(inactivity_days=30)
    with pytest.raises(ValidationError, match="unknown time zone 'Mars/Olympus'"):
        Settings(reporting_tz="Mars/Olympus")
    with pytest.raises(ValidationError, match="every window must be at least 1 day"):
        Settings(windows_days=(0, 30))
    assert Settings(windows_days=(7, 28)).kpi_params.all_windows == (7, 28, 365)
