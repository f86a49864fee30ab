"""py-spy's raw samples of a process, sorted into where the CPU goes (bench/profile_run.py).

A frame is in a category when its file path holds one of the category's fragments. A sample
counts in every category on its stack ("inclusive") and in the one nearest its leaf ("self").
Imports nothing heavy, so its tests run without the bench extra.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

# (category, path fragments): a frame is in a category when its file path holds a fragment.
CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("module imports", ("importlib", "<frozen importlib")),
    ("workflow sandbox", ("temporalio/worker/workflow_sandbox",)),
    ("workflow code (deterministic)", ("workflows/",)),
    ("payload conversion (pydantic/JSON)", ("temporalio/converter", "pydantic", "json/", "temporal/payload")),
    ("payload encryption (AES-GCM codec)", ("aios/temporal/codec", "cryptography")),
    ("OpenTelemetry", ("opentelemetry", "aios/observability")),
    ("Postgres client (psycopg)", ("psycopg",)),
    ("HTTP clients (model, effects)", ("httpx", "httpcore", "h11", "anyio")),
    ("activities and kernel", ("activities/", "aios/", "connectors/")),
    ("Temporal SDK (worker, client, bridge)", ("temporalio/",)),
    ("asyncio event loop", ("asyncio/", "selectors")),
]
OTHER = "other"


@dataclass
class Samples:
    total: int = 0
    inclusive: Counter[str] = field(default_factory=Counter)
    leaf: Counter[str] = field(default_factory=Counter)
    modules: Counter[str] = field(default_factory=Counter)  # files whose module body runs (imports)
    sandbox: Counter[str] = field(default_factory=Counter)  # sandbox function nearest the leaf


def category_of(frame: str) -> str | None:
    for name, fragments in CATEGORIES:
        if any(fragment in frame for fragment in fragments):
            return name
    return None


def read_samples(raw: str) -> Samples:
    """py-spy's raw format: `frame;frame;...;leaf COUNT` per distinct stack."""
    samples = Samples()
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        found = [category for frame in frames if (category := category_of(frame))]
        samples.total += count
        for category in set(found) or {OTHER}:
            samples.inclusive[category] += count
        samples.leaf[found[-1] if found else OTHER] += count
        for module in imported_modules(frames):
            samples.modules[module] += count
        in_sandbox = [frame for frame in frames if "workflow_sandbox" in frame]
        if in_sandbox:
            samples.sandbox[in_sandbox[-1].rsplit(":", 1)[0] + ")"] += count
    return samples


def imported_modules(frames: list[str]) -> set[str]:
    """The files whose module body runs below an import on this stack (not the main script's)."""
    first_import = next((i for i, frame in enumerate(frames) if "importlib" in frame), None)
    if first_import is None:
        return set()
    return {frame_file(frame) for frame in frames[first_import:] if frame.startswith("<module> (")}


def frame_file(frame: str) -> str:
    """`<module> (pydantic/main.py:12)` -> `pydantic/main.py`."""
    return frame.partition("(")[2].rsplit(":", 1)[0]
