"""Every topic value type round-trips through its wire encoding and refuses what it is not."""

from __future__ import annotations

import dataclasses
import math
import pickle
import struct
from datetime import UTC, datetime

import msgpack
import numpy as np
import pytest
from aiops_common.schemas import (
    AlertRecord,
    AlertStatus,
    ChangeEvent,
    LogBatch,
    LogRecord,
    MetricBatch,
    MetricBatchBuilder,
    MetricKind,
    SchemaError,
    SeriesMeta,
    Span,
    SpanBatch,
    encode_envelope,
    is_stale_marker,
    series_key,
)
from aiops_common.schemas.metrics import shard_of
from aiops_common.schemas.rca import CauseKind, RankedCause, RcaResult, RcaStatus
from pydantic import ValidationError

pytestmark = pytest.mark.unit

STALE_NAN = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]


def test_metric_batch_round_trips_values_labels_kinds_and_stale_markers() -> None:
    builder = MetricBatchBuilder()
    builder.add("http_requests_total", {"service": "api", "code": "200"}, 1_000, 5.0, MetricKind.COUNTER)
    builder.add("http_requests_total", {"code": "200", "service": "api"}, 2_000, 7.0, MetricKind.COUNTER)
    builder.add("cpu", {"host": "a"}, 1_500, STALE_NAN, MetricKind.GAUGE, unit="1")
    decoded = MetricBatch.decode(builder.build().encode())
    assert len(decoded) == 3 and len(decoded.series) == 2, "label order does not make a new series"
    samples = list(decoded.samples())
    assert [(m.name, t, v) for m, t, v in samples[:2]] == [
        ("http_requests_total", 1_000, 5.0),
        ("http_requests_total", 2_000, 7.0),
    ]
    meta, ts, value = samples[2]
    assert meta.kind is MetricKind.GAUGE and meta.unit == "1" and ts == 1_500
    assert math.isnan(value) and struct.pack("<d", value) == struct.pack("<d", STALE_NAN)
    assert samples[0][0].key == 'http_requests_total{code="200",service="api"}'


def test_by_partition_keeps_each_series_on_one_partition_and_loses_nothing() -> None:
    builder = MetricBatchBuilder(partitions=8)
    for i in range(500):
        builder.add("m", {"i": str(i % 50)}, i, float(i))
    parts = builder.by_partition()
    assert sum(len(b) for b in parts.values()) == 500
    seen: dict[str, int] = {}
    for part, batch in parts.items():
        for meta, _ts, _v in MetricBatch.decode(batch.encode()).samples():
            assert shard_of(meta.key, 8) == part
            assert seen.setdefault(meta.key, part) == part
    assert len(seen) == 50 and len(parts) > 1
    values = sorted(v for b in parts.values() for _m, _t, v in b.samples())
    assert values == [float(i) for i in range(500)]


def test_shard_is_stable_across_processes() -> None:
    # crc32, not Python's salted hash(): the same series must map to the same partition everywhere.
    assert shard_of(series_key("up", {"job": "node"}), 8) == shard_of('up{job="node"}', 8) == 3  # crc32 2893088611 % 8


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",
        msgpack.packb([1, 2]),
        msgpack.packb({"schema": "logs.batch", "v": 1, "body": {}}),
        msgpack.packb({"schema": "metrics.batch", "v": 99, "body": {}}),
        msgpack.packb({"schema": "metrics.batch", "v": 1, "body": {"series": []}}),
        msgpack.packb(
            {
                "schema": "metrics.batch",
                "v": 1,
                "body": {"series": [], "sid": b"\0" * 4, "ts": b"\0" * 8, "val": b"\0" * 8},
            }
        ),
        msgpack.packb(
            {"schema": "metrics.batch", "v": 1, "body": {"series": [], "sid": b"", "ts": b"\0" * 8, "val": b""}}
        ),
        # Series rows that are not [name, labels, kind, unit] of the right types.
        *(
            msgpack.packb(
                {"schema": "metrics.batch", "v": 1, "body": {"series": [row], "sid": b"", "ts": b"", "val": b""}}
            )
            for row in (
                ["up", {"job": "a"}, "gauge"],
                ["up", {"job": "a"}, "no-such-kind", ""],
                ["up", {"job": 1}, "gauge", ""],
                [1, {}, "gauge", ""],
                "up",
            )
        ),
        msgpack.packb({"schema": "metrics.batch", "v": 1, "body": {"series": "up"}}),
        msgpack.packb({"schema": "metrics.batch", "v": 1, "body": [1]}),
        # Cut short, or with bytes after the envelope.
        msgpack.packb({"schema": "metrics.batch", "v": 1, "body": {"series": [["up", {}, "gauge", ""]]}})[:-3],
        msgpack.packb({"schema": "metrics.batch", "v": 1, "body": {"series": []}}) + b"\x01",
    ],
)
def test_metric_batch_refuses_what_it_is_not(data: bytes) -> None:
    with pytest.raises(SchemaError):
        MetricBatch.decode(data)


def test_log_and_span_batches_round_trip() -> None:
    logs = LogBatch([LogRecord(1, "api", "boom", "ERROR", 17, {"k": "v"}, "ab" * 16, "cd" * 8)])
    assert LogBatch.decode(logs.encode()) == logs
    spans = SpanBatch([Span("ab" * 16, "cd" * 8, "", "api", "GET /", "SERVER", 10, 2_000_000_010, "ERROR")])
    decoded = SpanBatch.decode(spans.encode())
    assert decoded == spans and decoded.rows[0].duration_s == pytest.approx(2.0)
    with pytest.raises(SchemaError):
        SpanBatch.decode(logs.encode())


def test_records_round_trip_and_validate() -> None:
    alert = AlertRecord(
        fingerprint="f1", status=AlertStatus.FIRING, name="HighLatency", starts_at=datetime(2026, 1, 1, tzinfo=UTC)
    )
    assert AlertRecord.decode(alert.encode()) == alert
    assert alert.dedup_key == "f1:firing:2026-01-01T00:00:00+00:00"
    change = ChangeEvent(id="d1", service="api", version="1.2", at=datetime(2026, 1, 1, tzinfo=UTC))
    assert ChangeEvent.decode(change.encode()) == change
    with pytest.raises(SchemaError):
        AlertRecord.decode(change.encode())
    bad = msgpack.packb({"schema": "alerts.alert", "v": 1, "body": {"fingerprint": "x"}})
    with pytest.raises(SchemaError, match="status"):
        AlertRecord.decode(bad)


def test_a_newer_writer_s_added_fields_are_left_out_at_any_depth_and_nothing_else_is_forgiven() -> None:
    # A rolling upgrade: a newer service adds fields within the schema version; an older reader still reads.
    cause = RankedCause(service="payment", probability=0.9, kind=CauseKind.SATURATION)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    result = RcaResult(
        id="rca-1", incident_id="inc-1", incident_revision=1, at=at, analyzed_at=at, status=RcaStatus.OK, causes=[cause]
    )
    newer = result.model_dump(mode="json") | {"added_later": {"x": 1}}
    newer["causes"] = [cause.model_dump(mode="json") | {"confidence_band": [0.8, 0.95]}]
    decoded = RcaResult.decode(encode_envelope("rca.result", 1, newer))
    assert decoded == result
    # Built in code a record still refuses an unknown field; on the wire a missing or wrong field still fails.
    with pytest.raises(ValidationError):
        RcaResult.model_validate(newer)
    missing = {k: v for k, v in newer.items() if k != "incident_id"}
    with pytest.raises(SchemaError, match="incident_id"):
        RcaResult.decode(encode_envelope("rca.result", 1, missing))
    wrong = newer | {"incident_revision": "not a number"}
    with pytest.raises(SchemaError, match="incident_revision"):
        RcaResult.decode(encode_envelope("rca.result", 1, wrong))


def test_numpy_columns_are_little_endian_on_the_wire() -> None:
    builder = MetricBatchBuilder()
    builder.add("m", {}, 2**40, 1.5)
    body = msgpack.unpackb(builder.build().encode())["body"]
    assert np.frombuffer(body["ts"], "<i8")[0] == 2**40 and np.frombuffer(body["val"], "<f8")[0] == 1.5


def test_bulk_path_finds_each_series_once_by_key_and_keeps_sample_order() -> None:
    builder = MetricBatchBuilder(partitions=4)
    up = SeriesMeta("up", {"job": "api"})
    down = SeriesMeta("down", {"job": "api"}, MetricKind.COUNTER, "1")
    assert builder.series_id(up, up.key) == 0
    assert builder.series_id(down, down.key) == 1
    # A different object for the same key is the same series: the first meta stays.
    assert builder.series_id(SeriesMeta("up", {"job": "api"}, MetricKind.COUNTER), up.key) == 0
    builder.append(1, 1_000, 3.0)
    builder.extend([0, 1, 0], [1_000, 2_000, 2_000], [1.0, 4.0, STALE_NAN])
    assert len(builder) == 4 and builder.series_count == 2
    batch = MetricBatch.decode(builder.build().encode())
    rows = [(m.name, m.kind, m.unit, t, v) for m, t, v in batch.samples()]
    assert rows[:3] == [
        ("down", MetricKind.COUNTER, "1", 1_000, 3.0),
        ("up", MetricKind.GAUGE, "", 1_000, 1.0),
        ("down", MetricKind.COUNTER, "1", 2_000, 4.0),
    ]
    assert struct.pack("<d", rows[3][4]) == struct.pack("<d", STALE_NAN)


def test_bulk_path_refuses_columns_of_different_lengths_and_unknown_ids() -> None:
    builder = MetricBatchBuilder()
    with pytest.raises(ValueError, match="column lengths differ"):
        builder.extend([0], [1, 2], [1.0])
    builder.append(0, 1_000, 1.0)  # no series_id handed out 0
    with pytest.raises(ValueError, match="series id"):
        builder.build()


def test_bulk_path_partitions_like_the_per_sample_path() -> None:
    by_add, by_id = MetricBatchBuilder(partitions=8), MetricBatchBuilder(partitions=8)
    metas = [SeriesMeta("m", {"i": str(i)}) for i in range(50)]
    for i in range(500):
        by_add.add("m", {"i": str(i % 50)}, i, float(i))
        meta = metas[i % 50]
        by_id.append(by_id.series_id(meta, meta.key), i, float(i))
    add_parts, id_parts = by_add.by_partition(), by_id.by_partition()
    assert add_parts.keys() == id_parts.keys()
    for part, batch in id_parts.items():
        assert [m.key for m in batch.series] == [m.key for m in add_parts[part].series]
        assert batch.value.tolist() == add_parts[part].value.tolist()
        assert all(shard_of(m.key, 8) == m.shard(8) == part for m in batch.series)


def test_series_meta_caches_its_key_shard_and_row_without_changing_what_it_is() -> None:
    meta = SeriesMeta("http_requests_total", {"service": "api", "code": "200"}, MetricKind.COUNTER)
    assert meta.key == series_key(meta.name, meta.labels) and meta.key is meta.key
    assert meta.shard(8) == shard_of(meta.key, 8) and meta.shard(3) == shard_of(meta.key, 3)
    MetricBatch([meta], np.zeros(1, np.uint32), np.zeros(1, np.int64), np.zeros(1)).encode()
    fresh = SeriesMeta("http_requests_total", {"service": "api", "code": "200"}, MetricKind.COUNTER)
    assert meta == fresh and repr(meta) == repr(fresh), "the cache is no part of equality or repr"
    assert pickle.loads(pickle.dumps(meta)) == meta
    retyped = dataclasses.replace(meta, kind=MetricKind.GAUGE)
    assert retyped.kind is MetricKind.GAUGE and retyped.key == meta.key
    row = MetricBatch.decode(MetricBatch([retyped], np.zeros(1, np.uint32), np.ones(1, np.int64), np.ones(1)).encode())
    assert row.series[0].kind is MetricKind.GAUGE, "a replaced series packs its own row"


def test_encoding_is_byte_for_byte_the_plain_msgpack_envelope() -> None:
    # Consumers decode with any msgpack reader: splicing in packed rows must not change a byte.
    builder = MetricBatchBuilder()
    builder.add("up", {"job": "a", "instance": "h:1"}, 1_000, 1.0, MetricKind.COUNTER, "s")
    builder.add("cpu", {}, 2_000, STALE_NAN)
    batch = builder.build()
    plain = encode_envelope(
        "metrics.batch",
        1,
        {
            "series": [[m.name, dict(m.labels), m.kind.value, m.unit] for m in batch.series],
            "sid": batch.sid.astype("<u4").tobytes(),
            "ts": batch.ts_ms.astype("<i8").tobytes(),
            "val": batch.value.astype("<f8").tobytes(),
        },
    )
    assert batch.encode() == plain
    assert MetricBatch([], np.zeros(0, np.uint32), np.zeros(0, np.int64), np.zeros(0)).encode() == encode_envelope(
        "metrics.batch", 1, {"series": [], "sid": b"", "ts": b"", "val": b""}
    )


def test_stale_marker_is_one_exact_nan() -> None:
    assert is_stale_marker(STALE_NAN) and math.isnan(STALE_NAN)
    assert not is_stale_marker(math.nan) and not is_stale_marker(0.0) and not is_stale_marker(math.inf)


def test_series_whose_labels_read_alike_stay_apart() -> None:
    # Unescaped, these two label sets would print as the same key string.
    tricky, plain = {"a": 'x",b="y'}, {"a": "x", "b": "y"}
    assert series_key("m", tricky) != series_key("m", plain)
    assert series_key("m", tricky) == 'm{a="x\\",b=\\"y"}'
    builder = MetricBatchBuilder()
    builder.add("m", plain, 1_000, 1.0)
    builder.add("m", tricky, 1_000, 2.0)
    meta = SeriesMeta("m", tricky)
    builder.append(builder.series_id(meta, meta.key), 2_000, 3.0)
    batch = builder.build()
    assert [dict(m.labels) for m in batch.series] == [plain, tricky]
    assert [(dict(m.labels), v) for m, _t, v in batch.samples()] == [(plain, 1.0), (tricky, 2.0), (tricky, 3.0)]


def test_decoding_reuses_the_series_a_stream_sends_again_and_again() -> None:
    cpu = SeriesMeta("cpu", {"host": "a"}, MetricKind.GAUGE, "%")
    up = SeriesMeta("up", {"job": "api"})
    first = MetricBatch.decode(_batch([cpu, up]).encode())
    again = MetricBatch.decode(_batch([up, cpu]).encode())
    # Equal to what was sent, and the very same objects batch after batch (key and shard computed once).
    assert first.series == [cpu, up] and again.series == [up, cpu]
    assert again.series[0] is first.series[1] and again.series[1] is first.series[0]
    # The same bytes as the plain msgpack decoding of the envelope.
    plain = msgpack.unpackb(_batch([cpu, up]).encode(), raw=False)["body"]["series"]
    assert [[m.name, dict(m.labels), m.kind.value, m.unit] for m in first.series] == plain


def _batch(series: list[SeriesMeta]) -> MetricBatch:
    n = len(series)
    return MetricBatch(series, np.arange(n, dtype=np.uint32), np.full(n, 1_700_000_000_000, dtype=np.int64), np.ones(n))
