"""Faust codecs for table keys and values (versioned state, JSON metas and ledgers)."""

from __future__ import annotations

from typing import Any

import orjson
from faust.serializers import codecs

from stream_app.keys import MetaKey
from stream_app.kpi.meta import ClosedTerms, PartitionMeta
from stream_app.kpi.rejections import RejectionLedger
from stream_app.kpi.state_codec import decode_state, encode_state, legacy_state

UTF8 = "lp-utf8"
STATE_KEY = "lp-state-key"
CUSTOMER = "lp-customer"
LEDGER = "lp-ledger"


class Utf8Codec(codecs.Codec):
    def _dumps(self, obj: Any) -> bytes:
        return obj.encode() if isinstance(obj, str) else bytes(obj)

    def _loads(self, s: bytes) -> Any:
        return s.decode()


class StateKeyCodec(codecs.Codec):
    """Keys of the customers table: a customer id, or a partition's MetaKey."""

    def _dumps(self, obj: Any) -> bytes:
        return (obj.encode() if isinstance(obj, MetaKey) else obj).encode()

    def _loads(self, s: bytes) -> Any:
        text = s.decode()
        return MetaKey.decode(text) or text


class CustomerCodec(codecs.Codec):
    """Customer states (msgpack, kpi/state_codec.py); partition metas and closed
    terms (JSON)."""

    def _dumps(self, obj: Any) -> bytes:
        if isinstance(obj, PartitionMeta | ClosedTerms):
            return orjson.dumps(obj.to_dict(), option=orjson.OPT_NON_STR_KEYS)
        return encode_state(obj)

    def _loads(self, s: bytes) -> Any:
        if s[:1] != b"{":
            return decode_state(s)
        data = orjson.loads(s)
        if "meta" in data:  # PartitionMeta records carry their version under "meta"
            return PartitionMeta.from_dict(data)
        if "closed_terms" in data:
            return ClosedTerms.from_dict(data)
        return legacy_state(data)


class LedgerCodec(codecs.Codec):
    def _dumps(self, obj: Any) -> bytes:
        return orjson.dumps(obj.to_dict())

    def _loads(self, s: bytes) -> Any:
        return RejectionLedger.from_dict(orjson.loads(s))


def register() -> None:
    codecs.register(UTF8, Utf8Codec())
    codecs.register(STATE_KEY, StateKeyCodec())
    codecs.register(CUSTOMER, CustomerCodec())
    codecs.register(LEDGER, LedgerCodec())
