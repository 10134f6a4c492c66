"""Pins how our tables are wired into Faust (serializers, changelog topic)."""

from __future__ import annotations

from stream_app.app import create_app
from stream_app.kpi.customer import CustomerState
from stream_app.settings import Settings
from tables import codecs


def test_tables_use_our_codecs_for_store_and_changelog(tmp_path) -> None:
    runtime = create_app(Settings(store="memory", data_dir=tmp_path, app_id="pin"))
    for table, codec in (
        (runtime.tables.customers, codecs.CUSTOMER),
        (runtime.tables.rejections, codecs.LEDGER),
    ):
        topic = table.changelog_topic
        assert (table.key_serializer, table.value_serializer) == (codecs.UTF8, codec)
        assert (topic.key_serializer, topic.value_serializer) == (codecs.UTF8, codec)
        assert topic.get_topic_name() == f"pin-{table.name}-changelog"
        assert topic.acks and topic.compacting and topic.partitions == 8


def test_customer_codec_round_trips() -> None:
    codecs.register()
    codec = codecs.CustomerCodec()
    state = CustomerState(purchases=2, revenue_minor=1999, recent_ids={"e1": 5})
    assert codec.loads(codec.dumps(state)) == state


def test_single_record_batches_follow_the_broker_in_auto_mode() -> None:
    from stream_app.app import faust_settings
    from stream_app.broker import EMBEDDED_CLUSTER_ID
    from stream_app.worker import wants_single_record_batches

    auto, on, off = (Settings(single_record_batches=m) for m in ("auto", "on", "off"))
    assert wants_single_record_batches(auto, EMBEDDED_CLUSTER_ID)
    assert not wants_single_record_batches(auto, "kafka-prod-cluster")
    assert not wants_single_record_batches(auto, None)
    assert wants_single_record_batches(on, "kafka-prod-cluster")
    assert not wants_single_record_batches(off, EMBEDDED_CLUSTER_ID)
    assert faust_settings(auto, single_record_batches=True)["producer_max_batch_size"] == 1
    assert "producer_max_batch_size" not in faust_settings(auto)


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
