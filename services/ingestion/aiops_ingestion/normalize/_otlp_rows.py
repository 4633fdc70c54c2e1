"""The resource -> scope -> record walk that OTLP logs and traces share, collecting the bad records."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from aiops_ingestion.normalize._errors import Refused, Rejections
from aiops_ingestion.normalize._otlp_attributes import AttributeConflict, attribute_labels, service_and_labels

__all__ = ["ScopeGroup", "convert_rows"]

T = TypeVar("T")
R = TypeVar("R")

ScopeGroup = tuple[Sequence[KeyValue], Sequence[KeyValue], Sequence[T]]
"""One scope's records with their resource and scope attributes."""


def convert_rows(
    groups: Iterable[ScopeGroup[T]],
    convert: Callable[[T, str, dict[str, str]], R],
    describe: Callable[[int, T, str], str],
    rejections: Rejections,
) -> list[R]:
    """``convert(record, service, resource_and_scope_labels)`` for every valid record.

    A record that raises Refused (or has conflicting attributes) is described by
    ``describe(index, record, service)`` in ``rejections``, which refuses the
    request (see :meth:`Rejections.settle`) or leaves the record out.
    """
    rows: list[R] = []
    total = 0
    for resource_attributes, scope_attributes, records in groups:
        try:
            service, resource = service_and_labels(resource_attributes)
            sender = resource | attribute_labels(scope_attributes)
        except AttributeConflict as exc:
            total += len(records)
            rejections.add("resource", str(exc), len(records))
            continue
        for record in records:
            try:
                rows.append(convert(record, service, sender))
            except (Refused, AttributeConflict) as exc:
                rejections.add(describe(total, record, service), str(exc))
            total += 1
    rejections.settle(total)
    return rows
