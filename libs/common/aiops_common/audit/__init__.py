"""The audit log: an append-only hash chain in the document store that shows any edit, deletion or reordering."""

from __future__ import annotations

from aiops_common.audit.chain import (
    AUDIT_COLLECTION,
    CHAIN,
    GENESIS_HASH,
    AuditChainBusyError,
    AuditEntry,
    AuditLog,
    AuditProblem,
    AuditReport,
    ProblemKind,
    audit_doc_id,
    entry_hash,
    parse_head,
    verify,
)

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
