"""The append-only audit log: one hash chain of entries in the document store's ``audit`` collection, and its check.

Entry ``seq`` is the document ``audit-{seq:012d}``, written only if that id is new (``expected_version=0``), so two
writers can never both take one place in the chain: the loser reads the tail again and retries. Each entry carries
the hash of the one before it and its own hash over everything else it holds; :func:`verify` recomputes them all.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from aiops_common.documents._protocol import EVERYTHING, DocumentStore, VersionConflictError

__all__ = [
    "AUDIT_COLLECTION",
    "CHAIN",
    "GENESIS_HASH",
    "AuditChainBusyError",
    "AuditEntry",
    "AuditLog",
    "AuditProblem",
    "AuditReport",
    "ProblemKind",
    "audit_doc_id",
    "entry_hash",
    "parse_head",
    "verify",
]

AUDIT_COLLECTION = "audit"
CHAIN = "audit-v1"
"""Marks a document as an entry of the chain (entries written before the chain existed lack it and are skipped)."""
GENESIS_HASH = "0" * 64
"""The ``prev_hash`` of entry 1."""

_ID = re.compile(r"^audit-(\d{12})$")
# Fields the chain itself sets; a caller's extra fields cannot replace them.
_RESERVED = frozenset(
    {"id", "chain", "seq", "at", "actor", "action", "subject_id", "services", "message", "details", "prev_hash", "hash"}
)
_PAGE = 1000
_TAIL_WINDOW = 20

ProblemKind = Literal["edited", "deleted", "reordered", "truncated", "rewritten"]
"""``edited``: an entry's hash does not match what it holds. ``deleted``: a place in the chain is empty, or an entry's
``prev_hash`` is not the hash of the entry before it. ``reordered``: an entry sits at another place than the one it
was written at, or links to an entry other than the one before it. ``truncated``: the chain ends before a head seen
earlier. ``rewritten``: the entry at a head seen earlier has another hash now."""


def audit_doc_id(seq: int) -> str:
    """The document id of entry ``seq`` (zero-padded, so ids sort as the chain does)."""
    return f"audit-{seq:012d}"


def _canonical(body: Mapping[str, Any]) -> bytes:
    return json.dumps(
        {k: v for k, v in body.items() if k != "hash"}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()


def entry_hash(body: Mapping[str, Any]) -> str:
    """sha256 of the entry's canonical JSON (sorted keys, compact, without ``hash``); ``prev_hash`` is inside it."""
    return hashlib.sha256(_canonical(body)).hexdigest()


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One entry as stored: ``body`` is the whole document, ``hash`` included."""

    seq: int
    hash: str
    prev_hash: str
    body: dict[str, Any]

    @property
    def id(self) -> str:
        return audit_doc_id(self.seq)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> AuditEntry:
        return cls(int(body["seq"]), str(body["hash"]), str(body["prev_hash"]), dict(body))


class AuditChainBusyError(RuntimeError):
    """Other writers took every place this append tried; nothing was written."""


class AuditLog:
    """Appends entries to the chain in ``store``; several instances (processes, replicas) may share one store.

    The last tail this instance saw is kept as the place to look from next time; appends of one instance wait for
    each other, so only other writers make it retry.
    """

    def __init__(self, store: DocumentStore, *, max_attempts: int = 50) -> None:
        self.store = store
        self.max_attempts = max_attempts
        self._tail: tuple[int, str] | None = None
        self._lock = asyncio.Lock()

    async def append(
        self,
        actor: str,
        action: str,
        subject_id: str,
        message: str,
        services: Sequence[str] = (),
        details: Mapping[str, Any] | None = None,
        at: datetime | None = None,
        *,
        extra: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        """Write one entry at the end of the chain and return it.

        ``extra``: more top-level fields to keep (e.g. the request id), covered by the hash like the rest.
        Raises :class:`AuditChainBusyError` after ``max_attempts`` places were taken by other writers.
        """
        when = at or datetime.now(UTC)
        if when.tzinfo is None:
            raise ValueError(f"{when!r} has no time zone; audit times are instants")
        clash = sorted(_RESERVED.intersection(extra or {}))
        if clash:
            raise ValueError(f"extra fields may not replace the entry's own: {', '.join(clash)}")
        content: dict[str, Any] = {
            **(extra or {}),
            "chain": CHAIN,
            "at": when.isoformat(),
            "actor": actor,
            "action": action,
            "subject_id": subject_id,
            "services": list(services),
            "message": message,
            "details": dict(details or {}),
        }
        # Stored as read back: tuples become lists, keys strings, other values their text; so the hash taken
        # here is the hash of what verify will read.
        content = json.loads(json.dumps(content, default=str))
        async with self._lock:
            for attempt in range(self.max_attempts):
                seq, prev_hash = await self._find_tail()
                body = {**content, "id": audit_doc_id(seq + 1), "seq": seq + 1, "prev_hash": prev_hash}
                body["hash"] = entry_hash(body)
                try:
                    await self.store.upsert(AUDIT_COLLECTION, body["id"], body, expected_version=0)
                except VersionConflictError:
                    # Another writer took this place: look again from it, after a short spread-out pause so
                    # writers in step do not keep colliding.
                    await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))
                    continue
                self._tail = (body["seq"], body["hash"])
                return AuditEntry.from_body(body)
        raise AuditChainBusyError(
            f"{self.max_attempts} places in the audit chain were taken by other writers in turn; nothing was written"
        )

    async def head(self) -> tuple[int, str]:
        """(seq, hash) of the last entry; (0, GENESIS_HASH) for an empty chain."""
        async with self._lock:
            return await self._find_tail()

    async def _find_tail(self) -> tuple[int, str]:
        tail = self._tail or await self._newest_by_time()
        # Clocks may differ between writers: the newest by time need not be the last; later ids are.
        while (found := await self.store.get(AUDIT_COLLECTION, audit_doc_id(tail[0] + 1))) is not None:
            tail = (tail[0] + 1, str(found.body.get("hash", "")))
        self._tail = tail
        return tail

    async def _newest_by_time(self) -> tuple[int, str]:
        page = await self.store.query(AUDIT_COLLECTION, limit=_TAIL_WINDOW, fields=("chain", "seq", "hash"))
        chained = [
            (d.body["seq"], str(d.body["hash"]))
            for d in page.documents
            if d.body.get("chain") == CHAIN and isinstance(d.body.get("seq"), int)
        ]
        return max(chained) if chained else (0, GENESIS_HASH)


@dataclass(frozen=True, slots=True)
class AuditProblem:
    """The first place one kind of damage shows, in words."""

    kind: ProblemKind
    seq: int
    message: str


@dataclass(frozen=True, slots=True)
class AuditReport:
    """What :func:`verify` found: ``entries`` read, the ``head`` (seq, hash) of the last, the first problem of each
    kind (in chain order) and how many places showed each kind."""

    entries: int
    head: tuple[int, str] | None
    problems: list[AuditProblem] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def intact(self) -> bool:
        return not self.problems

    def head_text(self) -> str:
        """``SEQ:HASH``, what ``--head`` takes next time; empty for an empty chain."""
        return "" if self.head is None else f"{self.head[0]}:{self.head[1]}"

    def to_json(self) -> dict[str, Any]:
        return {
            "entries": self.entries,
            "intact": self.intact,
            "head": None if self.head is None else {"seq": self.head[0], "hash": self.head[1]},
            "problems": [{"kind": p.kind, "seq": p.seq, "message": p.message} for p in self.problems],
            "counts": dict(self.counts),
        }


def parse_head(text: str) -> tuple[int, str]:
    """``SEQ:HASH`` (as :meth:`AuditReport.head_text` writes it) as (seq, hash)."""
    seq, sep, digest = text.strip().partition(":")
    if not sep or not seq.isdigit() or int(seq) < 1 or not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ValueError(f"not a head SEQ:HASH (a positive number, a colon, 64 hex digits): {text!r}")
    return int(seq), digest


@dataclass(slots=True)
class _Stored:
    body_seq: Any
    hash: str
    prev_hash: str
    hash_ok: bool


async def _read_chain(store: DocumentStore) -> dict[int, _Stored]:
    await store.refresh(AUDIT_COLLECTION)
    out: dict[int, _Stored] = {}
    cursor: str | None = None
    while True:
        page = await store.query(AUDIT_COLLECTION, EVERYTHING, oldest_first=True, limit=_PAGE, cursor=cursor)
        for doc in page.documents:
            matched = _ID.match(doc.id)
            if matched is None:
                continue  # written before the chain existed
            stored = str(doc.body.get("hash", ""))
            out[int(matched.group(1))] = _Stored(
                doc.body.get("seq"), stored, str(doc.body.get("prev_hash", "")), entry_hash(doc.body) == stored
            )
        if page.cursor is None:
            return out
        cursor = page.cursor


async def verify(store: DocumentStore, expected_head: tuple[int, str] | None = None) -> AuditReport:
    """Read the whole chain and recompute every hash and link; the first problem of each kind, by seq.

    A tail cut off leaves a chain that is whole on its own: only ``expected_head`` (a head from an earlier verify)
    shows it. An attacker who rewrites every entry from some place on, hashes and all, is caught the same way.
    """
    chain = await _read_chain(store)
    last = max(chain, default=0)
    by_hash = {entry.hash: seq for seq, entry in chain.items()}
    first: dict[str, AuditProblem] = {}
    counts: dict[str, int] = {}

    def found(kind: ProblemKind, seq: int, message: str) -> None:
        counts[kind] = counts.get(kind, 0) + 1
        first.setdefault(kind, AuditProblem(kind, seq, message))

    for seq in range(1, last + 1):
        entry = chain.get(seq)
        if entry is None:
            found("deleted", seq, f"entry {seq} is missing (entries up to {last} exist)")
            continue
        if entry.body_seq != seq:
            found("reordered", seq, f"{audit_doc_id(seq)} holds entry {entry.body_seq!r}, not entry {seq}")
        if not entry.hash_ok:
            found("edited", seq, f"entry {seq} was changed: its content does not hash to its stored hash")
        before = chain.get(seq - 1)
        expected_prev = GENESIS_HASH if seq == 1 else (before.hash if before is not None else None)
        if expected_prev is None or entry.prev_hash == expected_prev:
            continue  # the missing entry before it is reported already
        linked = by_hash.get(entry.prev_hash)
        if linked is not None and linked != seq - 1:
            found("reordered", seq, f"entry {seq} follows entry {linked} in the chain, not entry {seq - 1}")
        else:
            found(
                "deleted",
                seq,
                f"entry {seq} does not link to entry {seq - 1}: an entry between them was removed"
                f" or entry {seq - 1} was rewritten",
            )

    if expected_head is not None:
        head_seq, head_hash = expected_head
        if head_seq > last:
            found("truncated", last + 1, f"the chain ends at entry {last}, but entry {head_seq} was seen before")
        elif (at_head := chain.get(head_seq)) is not None and at_head.hash != head_hash:
            found("rewritten", head_seq, f"entry {head_seq} has another hash than when it was seen before")

    problems = sorted(first.values(), key=lambda p: (p.seq, p.kind))
    head = None if last == 0 or last not in chain else (last, chain[last].hash)
    return AuditReport(entries=len(chain), head=head, problems=problems, counts=counts)
