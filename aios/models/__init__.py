"""Domain models shared by workflows, activities and clients: pure pydantic, no I/O.

Every workflow, signal, update, query and activity input/output is one of these, and
carries a schema version so that stored histories stay readable as the models grow.
The worker passes this package through the workflow sandbox (see workers/main.py).
"""

from aios.models.audit import AuditEvent, AuditReceipt
from aios.models.base import SCHEMA_VERSION, Payload
from aios.models.ping import PingInput, PingResult

__all__ = ["SCHEMA_VERSION", "AuditEvent", "AuditReceipt", "Payload", "PingInput", "PingResult"]
