"""Prometheus remote write 1.0: snappy bodies decode, series normalize with kinds and labels, bad data is refused."""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import cramjam
import pytest
from aiops_common.prompb.remote_pb2 import WriteRequest
from aiops_common.prompb.types_pb2 import Label, MetricMetadata, Sample, TimeSeries
from aiops_common.schemas import MetricBatch, MetricBatchBuilder, MetricKind
from aiops_ingestion.normalize import (
    STALE_NAN,
    Enricher,
    InvalidPayloadError,
    Limits,
    SeriesCache,
    metric_kind,
    normalize_remote_write,
    parse_remote_write,
)
from aiops_ingestion.normalize._remote_write_view import single_sample_tails
from hypothesis import given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.unit

NOW_MS = 1_700_000_000_000
STALE_BITS = 0x7FF0000000000002


def series(labels: Mapping[str, str] | Sequence[tuple[str, str]], *samples: tuple[float, int]) -> Any:
    pairs = labels.items() if isinstance(labels, Mapping) else labels
    return TimeSeries(
        labels=[Label(name=k, value=v) for k, v in pairs],
        samples=[Sample(value=v, timestamp=t) for v, t in (samples or [(1.0, NOW_MS)])],
    )


def write_request(*timeseries: Any, metadata: Sequence[tuple[str, MetricMetadata.MetricType]] = ()) -> Any:
    return WriteRequest(
        timeseries=list(timeseries),
        metadata=[MetricMetadata(metric_family_name=name, type=kind) for name, kind in metadata],
    )


def snappy(message: Any) -> bytes:
    return bytes(cramjam.snappy.compress_raw(message.SerializeToString()))


def normalize(req: Any, limits: Limits | None = None, enricher: Enricher | None = None) -> MetricBatchBuilder:
    return normalize_remote_write(req, limits or Limits(), enricher or Enricher(), 8, now_ms=NOW_MS)


def rows(builder: MetricBatchBuilder) -> list[tuple[str, dict[str, str], str, int, float]]:
    return [(m.name, dict(m.labels), m.kind.value, ts, v) for m, ts, v in builder.build().samples()]


def refused(req: Any, limits: Limits | None = None) -> InvalidPayloadError:
    with pytest.raises(InvalidPayloadError) as caught:
        normalize(req, limits)
    return caught.value


def bits(value: float) -> int:
    return int(struct.unpack("<Q", struct.pack("<d", value))[0])


# Parsing ---------------------------------------------------------------------------------------------


def test_snappy_body_round_trips_into_the_write_request() -> None:
    req = write_request(
        series({"__name__": "up", "job": "node"}, (1.0, NOW_MS)), metadata=[("up", MetricMetadata.GAUGE)]
    )
    parsed = parse_remote_write(snappy(req))
    # The parsed view keeps each series as its bytes; it serializes back to the same request.
    assert parsed.timeseries == [series({"__name__": "up", "job": "node"}, (1.0, NOW_MS)).SerializeToString()]
    assert WriteRequest.FromString(parsed.SerializeToString()) == req


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "body is empty"),
        (b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", "not snappy block data"),
        (bytes(cramjam.snappy.compress(b"framed, not block")), "snappy"),
        (bytes(cramjam.snappy.compress_raw(b"\x0a\x05\x0a\x03")), "not a valid protobuf WriteRequest"),
    ],
)
def test_malformed_bodies_are_400(body: bytes, message: str) -> None:
    with pytest.raises(InvalidPayloadError) as caught:
        parse_remote_write(body)
    assert caught.value.status_code == 400 and message in caught.value.message


def test_decompression_bomb_is_413_before_inflating() -> None:
    bomb = bytes(cramjam.snappy.compress_raw(b"\x00" * 10_000))
    with pytest.raises(InvalidPayloadError) as caught:
        parse_remote_write(bomb, Limits(max_decompressed_bytes=1_000))
    assert caught.value.status_code == 413 and "inflates to 10000 bytes" in caught.value.message


# Series, labels, kinds -------------------------------------------------------------------------------


def test_name_label_is_the_series_name_and_job_fills_service() -> None:
    req = write_request(series({"__name__": "node_load1", "job": "node", "instance": "h1:9100"}, (0.5, NOW_MS)))
    assert rows(normalize(req)) == [
        ("node_load1", {"job": "node", "instance": "h1:9100", "service": "node"}, "gauge", NOW_MS, 0.5)
    ]


def test_service_label_sent_by_the_target_wins_over_job() -> None:
    req = write_request(series({"__name__": "up", "job": "kubernetes-pods", "service": "checkout"}))
    assert rows(normalize(req))[0][1]["service"] == "checkout"


def test_series_without_job_or_service_has_no_service_label() -> None:
    assert rows(normalize(write_request(series({"__name__": "up", "instance": "x"}))))[0][1] == {"instance": "x"}


def test_every_sample_of_a_series_is_kept_in_order() -> None:
    req = write_request(series({"__name__": "up", "job": "a"}, (1.0, NOW_MS - 30_000), (0.0, NOW_MS - 15_000)))
    builder = normalize(req)
    assert [(r[3], r[4]) for r in rows(builder)] == [(NOW_MS - 30_000, 1.0), (NOW_MS - 15_000, 0.0)]
    assert builder.series_count == 1


def test_empty_label_values_are_dropped_like_prometheus_does() -> None:
    req = write_request(series({"__name__": "up", "job": "a", "pod": ""}))
    assert rows(normalize(req))[0][1] == {"job": "a", "service": "a"}


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("http_requests_total", "counter"),
        ("http_duration_seconds_bucket", "histogram"),
        ("http_duration_seconds_sum", "histogram"),
        ("http_duration_seconds_count", "histogram"),
        ("process_resident_memory_bytes", "gauge"),
    ],
)
def test_kind_is_inferred_from_the_suffix_without_metadata(name: str, kind: str) -> None:
    assert rows(normalize(write_request(series({"__name__": name}))))[0][2] == kind


def test_kind_comes_from_metadata_when_sent() -> None:
    req = write_request(
        series({"__name__": "rpc_seconds_sum"}),
        series({"__name__": "rpc_seconds", "quantile": "0.5"}),
        series({"__name__": "temperature_total"}),
        series({"__name__": "jobs"}),
        metadata=[
            ("rpc_seconds", MetricMetadata.SUMMARY),
            ("temperature_total", MetricMetadata.GAUGE),
            ("jobs", MetricMetadata.COUNTER),
        ],
    )
    assert {r[0]: r[2] for r in rows(normalize(req))} == {
        "rpc_seconds_sum": "summary",
        "rpc_seconds": "summary",
        "temperature_total": "gauge",
        "jobs": "counter",
    }


def test_quantile_series_without_metadata_is_a_summary() -> None:
    assert rows(normalize(write_request(series({"__name__": "rpc_seconds", "quantile": "0.9"}))))[0][2] == "summary"


def test_metric_kind_matches_families_with_and_without_suffix() -> None:
    families = {"http_requests": MetricKind.COUNTER, "latency": MetricKind.HISTOGRAM}
    assert metric_kind("http_requests_total", families) is MetricKind.COUNTER
    assert metric_kind("latency_bucket", families) is MetricKind.HISTOGRAM
    assert metric_kind("latency", families) is MetricKind.HISTOGRAM
    assert metric_kind("other_count", families) is MetricKind.HISTOGRAM
    assert metric_kind("other", families) is MetricKind.GAUGE


def test_enricher_adds_metadata_for_the_service_taken_from_job() -> None:
    enricher = Enricher.from_mapping({"node": {"team": "infra", "job": "never-overwritten"}})
    builder = normalize(write_request(series({"__name__": "up", "job": "node"})), enricher=enricher)
    assert rows(builder)[0][1] == {"job": "node", "service": "node", "team": "infra"}


def test_builder_splits_series_across_the_requested_partitions() -> None:
    req = write_request(*(series({"__name__": "up", "job": "j", "instance": f"i{i}"}) for i in range(64)))
    parts = normalize(req).by_partition()
    assert len(parts) > 1 and set(parts) <= set(range(8))
    assert sum(len(batch) for batch in parts.values()) == 64


# Values ----------------------------------------------------------------------------------------------


def test_stale_marker_survives_normalization_partitioning_and_encoding_bit_for_bit() -> None:
    stale = struct.unpack("<d", struct.pack("<Q", STALE_BITS))[0]
    req = parse_remote_write(snappy(write_request(series({"__name__": "up", "job": "a"}, (stale, NOW_MS)))))
    (batch,) = normalize(req).by_partition().values()
    (value,) = MetricBatch.decode(batch.encode()).value.tolist()
    assert math.isnan(value) and bits(value) == STALE_BITS == bits(STALE_NAN)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (math.nan, "value NaN is not accepted (only the Prometheus stale marker NaN is)"),
        (struct.unpack("<d", struct.pack("<Q", 0x7FF8000000000001))[0], "value NaN"),
        (math.inf, "value +Inf is not accepted"),
        (-math.inf, "value -Inf is not accepted"),
    ],
)
def test_other_nans_and_infinities_are_refused(value: float, message: str) -> None:
    error = refused(write_request(series({"__name__": "cpu", "job": "a"}, (value, NOW_MS))))
    assert error.status_code == 400 and message in error.message and 'cpu{job="a",service="a"}' in error.message


def test_nan_quantile_of_an_empty_summary_is_skipped() -> None:
    req = write_request(
        series({"__name__": "rpc_seconds", "quantile": "0.5"}, (math.nan, NOW_MS)),
        series({"__name__": "rpc_seconds_count"}, (0.0, NOW_MS)),
        metadata=[("rpc_seconds", MetricMetadata.SUMMARY)],
    )
    assert [r[0] for r in rows(normalize(req))] == ["rpc_seconds_count"]


@pytest.mark.parametrize(
    ("ts", "message"),
    [
        (0, "timestamp 0 is not a valid time"),
        (-5, "timestamp -5 is not a valid time"),
        (NOW_MS + 601_000, "601s ahead of the server clock"),
        (NOW_MS - 40 * 86_400_000, "older than the accepted"),
    ],
)
def test_out_of_window_timestamps_are_refused(ts: int, message: str) -> None:
    assert message in refused(write_request(series({"__name__": "up"}, (1.0, ts)))).message


def test_age_check_can_be_disabled_but_time_zero_stays_invalid() -> None:
    limits = Limits(max_sample_age_s=0)
    jan_1971 = 31_536_000_000  # times before it are a wrong unit or an unset field, whatever the age limit
    assert rows(normalize(write_request(series({"__name__": "up"}, (1.0, jan_1971))), limits))[0][3] == jan_1971
    assert "not a valid time" in refused(write_request(series({"__name__": "up"}, (1.0, 0))), limits).message


# Labels ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ([("job", "a")], "no metric name"),
        ([("__name__", "")], "no metric name"),
        ([("__name__", "1up")], "metric name '1up' is invalid"),
        ([("__name__", "up-time")], "metric name 'up-time' is invalid"),
        ([("__name__", "up"), ("job", "a"), ("job", "b")], "duplicate label name 'job'"),
        ([("__name__", "up"), ("__name__", "down")], "duplicate label name '__name__'"),
        ([("__name__", "up"), ("bad-name", "x")], "label name 'bad-name' is invalid"),
        ([("__name__", "up"), ("0day", "x")], "label name '0day' is invalid"),
        ([("__name__", "up"), ("__meta_x", "x")], "reserved"),
    ],
)
def test_invalid_label_sets_are_refused(labels: list[tuple[str, str]], message: str) -> None:
    error = refused(write_request(series(labels)))
    assert error.status_code == 400 and message in error.message


@pytest.mark.parametrize(
    ("limits", "labels", "message"),
    [
        (Limits(max_labels_per_series=2), {"a": "1", "b": "2", "c": "3"}, "3 labels, more than the limit of 2"),
        (Limits(max_label_name_length=4), {"abcdef": "1"}, "6 characters, more than the limit of 4"),
        (Limits(max_label_value_length=4), {"a": "12345"}, "value of 5 characters, more than the limit of 4"),
    ],
)
def test_label_limits_are_enforced(limits: Limits, labels: dict[str, str], message: str) -> None:
    assert message in refused(write_request(series({"__name__": "up", **labels})), limits).message


def test_too_many_series_is_413() -> None:
    req = write_request(*(series({"__name__": "up", "i": str(i)}) for i in range(11)))
    error = refused(req, Limits(max_series_per_request=10))
    assert error.status_code == 413 and "11 series, more than the limit of 10" in error.message


def test_refusal_names_the_first_five_offenders_and_counts_them_all() -> None:
    good = [series({"__name__": "up", "i": str(i)}) for i in range(90)]
    bad = [series({"__name__": "up", "i": f"bad{i}"}, (math.inf, NOW_MS)) for i in range(10)]
    error = refused(write_request(*good, *bad))
    assert "10 of 100 series invalid" in error.message
    assert error.message.count("+Inf") == 5 and "and 5 more" in error.message
    assert 'up{i="bad0"}' in error.message and 'up{i="bad5"}' not in error.message


def test_long_offender_descriptions_are_cut_in_the_message() -> None:
    error = refused(write_request(series({"__name__": "up", "v": "x" * 5000})))
    assert len(error.message) < 500 and "..." in error.message


# The series cache -----------------------------------------------------------------------------------


def cached(req: Any, cache: SeriesCache, enricher: Enricher | None = None, now_ms: int = NOW_MS) -> MetricBatchBuilder:
    body = parse_remote_write(snappy(req))
    return normalize_remote_write(body, Limits(), enricher or Enricher(), 8, now_ms=now_ms, cache=cache)


def refused_cached(req: Any, cache: SeriesCache) -> InvalidPayloadError:
    with pytest.raises(InvalidPayloadError) as caught:
        cached(req, cache)
    return caught.value


def prometheus_request(value: float = 1.0, ts: int = NOW_MS, pod: str = "p1") -> Any:
    return write_request(
        series({"__name__": "http_requests_total", "job": "api", "pod": pod}, (value, ts)),
        series({"__name__": "up", "job": "api", "pod": pod}, (value, ts)),
    )


def test_a_series_seen_before_is_served_from_the_cache() -> None:
    cache = SeriesCache(100)
    first = cached(prometheus_request(1.0), cache)
    assert len(cache) == 2
    second = cached(prometheus_request(2.0, NOW_MS + 15_000), cache)
    assert len(cache) == 2
    first_series, second_series = first.build().series, second.build().series
    assert all(a is b for a, b in zip(first_series, second_series, strict=True)), "the same normalized objects"
    assert rows(second) == [
        ("http_requests_total", {"job": "api", "pod": "p1", "service": "api"}, "counter", NOW_MS + 15_000, 2.0),
        ("up", {"job": "api", "pod": "p1", "service": "api"}, "gauge", NOW_MS + 15_000, 2.0),
    ]


def test_a_changed_label_value_is_a_new_series() -> None:
    cache = SeriesCache(100)
    cached(prometheus_request(pod="p1"), cache)
    builder = cached(prometheus_request(pod="p2"), cache)
    assert len(cache) == 4
    assert {r[1]["pod"] for r in rows(builder)} == {"p2"}


def test_enrichment_is_applied_to_cached_series() -> None:
    cache = SeriesCache(100)
    enricher = Enricher.from_mapping({"api": {"team": "payments"}})
    cached(prometheus_request(), cache, enricher)
    assert {r[1]["team"] for r in rows(cached(prometheus_request(), cache, enricher))} == {"payments"}


def test_a_bad_new_series_is_refused_every_time_and_never_cached() -> None:
    cache = SeriesCache(100)
    bad = write_request(series({"__name__": "up", "bad-name": "x"}))
    for _ in range(2):
        error = refused_cached(bad, cache)
        assert error.status_code == 400 and "label name 'bad-name' is invalid" in error.message
    assert len(cache) == 0


def test_samples_of_a_cached_series_are_still_checked() -> None:
    cache = SeriesCache(100)
    cached(prometheus_request(), cache)
    assert "+Inf is not accepted" in refused_cached(prometheus_request(math.inf), cache).message
    assert "value NaN is not accepted" in refused_cached(prometheus_request(math.nan), cache).message
    assert "ahead of the server clock" in refused_cached(prometheus_request(ts=NOW_MS + 700_000), cache).message
    assert "older than the accepted" in refused_cached(prometheus_request(ts=NOW_MS - 40 * 86_400_000), cache).message


def test_zero_values_and_stale_markers_of_cached_series_are_kept_exactly() -> None:
    # Protobuf leaves a 0.0 value out of the encoding, so a zero sample has a shorter tail.
    cache = SeriesCache(100)
    cached(prometheus_request(), cache)
    stale = struct.unpack("<d", struct.pack("<Q", STALE_BITS))[0]
    assert [r[4] for r in rows(cached(prometheus_request(0.0), cache))] == [0.0, 0.0]
    values = [r[4] for r in rows(cached(prometheus_request(stale), cache))]
    assert [bits(v) for v in values] == [STALE_BITS, STALE_BITS]


def test_metadata_of_a_request_retypes_cached_series_for_that_request_only() -> None:
    cache = SeriesCache(100)
    plain = write_request(series({"__name__": "jobs", "job": "a"}))
    typed = write_request(series({"__name__": "jobs", "job": "a"}), metadata=[("jobs", MetricMetadata.COUNTER)])
    assert rows(cached(plain, cache))[0][2] == "gauge"
    assert rows(cached(typed, cache))[0][2] == "counter"
    assert rows(cached(plain, cache))[0][2] == "gauge"


def test_series_with_several_samples_are_cached_too() -> None:
    cache = SeriesCache(100)
    req = write_request(series({"__name__": "up", "job": "a"}, (1.0, NOW_MS - 15_000), (0.0, NOW_MS)))
    first = rows(cached(req, cache))
    assert len(cache) == 1
    assert (
        rows(cached(req, cache))
        == first
        == [
            ("up", {"job": "a", "service": "a"}, "gauge", NOW_MS - 15_000, 1.0),
            ("up", {"job": "a", "service": "a"}, "gauge", NOW_MS, 0.0),
        ]
    )


def _field(number: int, payload: bytes) -> bytes:
    return bytes([number << 3 | 2, len(payload)]) + payload


def test_series_laid_out_in_an_unusual_order_are_read_correctly() -> None:
    # A sample before the labels, and a last label whose UTF-8 value ends in bytes that
    # read as a sample (value b"ABCDEFGH", timestamp a 6-byte varint): neither series may
    # be taken for labels followed by one sample.
    fake_tail = b"\x12\x10\x09ABCDEFGH\x10" + "\u0080\u0800\x01".encode()
    decoy = Label(name="note", value=("x" + fake_tail.decode())).SerializeToString()
    name = Label(name="__name__", value="up").SerializeToString()
    sample = Sample(value=2.5, timestamp=NOW_MS).SerializeToString()
    ordinary = series({"__name__": "up", "note": "y"}, (2.5, NOW_MS)).SerializeToString()
    sample_first = _field(2, sample) + _field(1, name) + _field(1, decoy)
    assert sample_first.endswith(fake_tail)
    body = b"".join(_field(1, ts) for ts in (ordinary, sample_first))
    expected = rows(normalize(WriteRequest.FromString(body)))
    assert [(r[1]["note"][:1], r[3], r[4]) for r in expected] == [("y", NOW_MS, 2.5), ("x", NOW_MS, 2.5)]
    cache = SeriesCache(100)
    for _ in range(2):
        request = parse_remote_write(bytes(cramjam.snappy.compress_raw(body)))
        assert rows(normalize_remote_write(request, Limits(), Enricher(), 8, now_ms=NOW_MS, cache=cache)) == expected


label_values = st.sampled_from(["", "a", "b", "api"])
sample_values = st.sampled_from(
    [0.0, 1.0, -2.5, 1e300, math.inf, math.nan, struct.unpack("<d", struct.pack("<Q", STALE_BITS))[0]]
)
sample_times = st.sampled_from([NOW_MS, NOW_MS - 1, NOW_MS - 10**9, 1, 0, NOW_MS + 10**9, 2**34])


def any_series(name: str, labels: Mapping[str, str], samples: Sequence[tuple[float, int]]) -> Any:
    """Like ``series``, but with no default sample: a series may come with none."""
    return TimeSeries(
        labels=[Label(name=k, value=v) for k, v in {"__name__": name, **labels}.items()],
        samples=[Sample(value=v, timestamp=t) for v, t in samples],
    )


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["up", "rpc_seconds", "x_total", "1bad", ""]),
            st.dictionaries(st.sampled_from(["job", "quantile", "service", "bad-name"]), label_values, max_size=3),
            st.lists(st.tuples(sample_values, sample_times), max_size=3),
        ),
        max_size=8,
    ),
    st.booleans(),
)
@settings(max_examples=300, deadline=None)
def test_the_cache_never_changes_the_outcome(
    entries: list[tuple[str, dict[str, str], list[tuple[float, int]]]], with_metadata: bool
) -> None:
    metadata = [("rpc_seconds", MetricMetadata.SUMMARY)] if with_metadata else []
    body = snappy(write_request(*(any_series(*entry) for entry in entries), metadata=metadata))

    def outcome(cache: SeriesCache | None) -> object:
        try:
            request = parse_remote_write(body)
            builder = normalize_remote_write(request, Limits(), Enricher(), 8, now_ms=NOW_MS, cache=cache)
        except InvalidPayloadError as exc:
            return (exc.status_code, exc.message)
        return [(name, labels, kind, ts, bits(value)) for name, labels, kind, ts, value in rows(builder)]

    cache = SeriesCache(1_000)
    uncached = outcome(None)
    assert outcome(cache) == uncached, "cold cache"
    assert outcome(cache) == uncached, "warm cache"


@given(
    st.lists(
        st.tuples(
            st.floats(allow_nan=True)
            | st.integers(0, 2**64 - 1).map(lambda b: struct.unpack("<d", b.to_bytes(8, "little"))[0]),
            st.integers(-(2**63), 2**63 - 1),
            st.integers(0, 2),
        ),
        max_size=6,
    )
)
@settings(max_examples=300, deadline=None)
def test_sample_tails_decode_exactly_what_protobuf_parses(entries: list[tuple[float, int, int]]) -> None:
    blobs = [
        series({"__name__": "up", "i": str(i)}, *[(value, ts)] * count).SerializeToString()
        for i, (value, ts, count) in enumerate(entries)
    ]
    tails = single_sample_tails(blobs)
    for blob, end, ts, value in zip(blobs, tails.labels_end, tails.ts_ms, tails.value, strict=True):
        parsed = TimeSeries.FromString(blob)
        last = parsed.samples[-1] if parsed.samples else None
        if end:
            # The tail is the last sample; the bytes before it parse into everything else.
            assert last is not None and (ts, bits(value)) == (last.timestamp, bits(last.value))
            rest = TimeSeries.FromString(blob[:end])
            assert rest.labels == parsed.labels and rest.samples == parsed.samples[:-1]
        else:
            # Only unusual series go the full way: no sample, or a time outside 1971..2109.
            assert last is None or not 2**35 <= last.timestamp < 2**42
