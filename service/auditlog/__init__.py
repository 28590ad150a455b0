"""The tamper-evident audit log on the service's database.

The pure parts (entries, Merkle tree, signed notes, checkpoints, the offline
verifier) live in ``evidence_intake.audit``; this package stores them:
tables and append-only triggers, appends under a lock in the caller's
transaction, checkpoints, proofs and the JSONL export.
"""

from .keys import LogKeyError, create_log_key, load_log_signer, log_verifier_key
from .models import AuditCheckpoint, AuditEntry, AuditHead, AuditNode, AuditSubject
from .store import (
    LATEST_CHECKPOINT,
    AlsoWrite,
    AuditLogError,
    DbHashSource,
    Pending,
    append,
    append_many,
    checkpoint_due,
    consistency_proof,
    entry_bytes,
    export_jsonl,
    get_entry,
    head_size,
    inclusion_proof,
    latest_checkpoint,
    prove,
    root_at,
    seqs_about,
    seqs_about_statement,
    sign_checkpoint,
)
from .triggers import trigger_ddl

__all__ = [
    "LATEST_CHECKPOINT",
    "AlsoWrite",
    "AuditCheckpoint",
    "AuditEntry",
    "AuditHead",
    "AuditLogError",
    "AuditNode",
    "AuditSubject",
    "DbHashSource",
    "LogKeyError",
    "Pending",
    "append",
    "append_many",
    "checkpoint_due",
    "consistency_proof",
    "create_log_key",
    "entry_bytes",
    "export_jsonl",
    "get_entry",
    "head_size",
    "inclusion_proof",
    "latest_checkpoint",
    "load_log_signer",
    "log_verifier_key",
    "prove",
    "root_at",
    "seqs_about",
    "seqs_about_statement",
    "sign_checkpoint",
    "trigger_ddl",
]
