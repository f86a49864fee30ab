"""Spans as JSON lines in a file, and reading them back as a tree (`aios trace RUN`).

The development stand-in for a trace backend. Attributes are written as the spans carry
them; the code that sets them keeps secrets and payload bodies out (semantic-convention
names only).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

MAX_FILE_BYTES = 50 * 1024 * 1024  # then the file starts over, keeping one old generation
WORKFLOW_ID_ATTRIBUTE = "temporalWorkflowID"


class JsonLinesSpanExporter(SpanExporter):
    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(json.dumps(_as_record(span), default=str) + "\n" for span in spans)
        with self._lock:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            if self._path.exists() and self._path.stat().st_size > MAX_FILE_BYTES:
                self._path.replace(self._path.with_suffix(".old.jsonl"))
            with self._path.open("a") as out:
                out.write(lines)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def _as_record(span: ReadableSpan) -> dict[str, Any]:
    context = span.get_span_context()
    assert context is not None
    return {
        "name": span.name,
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
        "parent_id": format(span.parent.span_id, "016x") if span.parent else None,
        "start": span.start_time,
        "end": span.end_time,
        "status": span.status.status_code.name,
        "service": span.resource.attributes.get("service.name"),
        "attributes": dict(span.attributes or {}),
    }


@dataclass
class SpanNode:
    record: dict[str, Any]
    children: list[SpanNode] = field(default_factory=list)

    @property
    def duration_ms(self) -> float:
        start, end = self.record.get("start"), self.record.get("end")
        return (end - start) / 1e6 if start and end else 0.0


def read_spans(paths: Sequence[Path]) -> list[dict[str, Any]]:
    records = []
    for path in paths:
        if path.exists():
            records += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return records


def trace_of_run(records: list[dict[str, Any]], run_id: str) -> list[SpanNode]:
    """Every span of the traces that touched this workflow id, as root nodes of trees."""
    trace_ids = {r["trace_id"] for r in records if r["attributes"].get(WORKFLOW_ID_ATTRIBUTE) == run_id}
    nodes = {r["span_id"]: SpanNode(r) for r in records if r["trace_id"] in trace_ids}
    roots: list[SpanNode] = []
    for node in sorted(nodes.values(), key=lambda n: n.record["start"] or 0):
        parent = nodes.get(node.record["parent_id"] or "")
        (parent.children if parent else roots).append(node)
    return roots


def render(roots: list[SpanNode]) -> Iterator[str]:
    def walk(node: SpanNode, depth: int) -> Iterator[str]:
        status = "" if node.record["status"] != "ERROR" else "  [error]"
        yield f"{'  ' * depth}{node.record['name']}  {node.duration_ms:.1f} ms{status}"
        for child in node.children:
            yield from walk(child, depth + 1)

    for root in roots:
        yield f"trace {root.record['trace_id']}"
        yield from walk(root, 1)
