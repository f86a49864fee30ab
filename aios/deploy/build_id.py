"""A worker's build id: the hash of the code it runs, so two workers agree iff their code does."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

# The packages whose code a run executes: a change in any of them is a new version.
PACKAGES = ("workflows", "activities", "aios", "connectors", "workers")
LENGTH = 12


def code_build_id(packages: tuple[str, ...] = PACKAGES) -> str:
    """SHA-256 over every .py file of the packages (path and content, in path order)."""
    digest = hashlib.sha256()
    for name in packages:
        root = _package_root(name)
        for path in sorted(root.rglob("*.py")):
            digest.update(f"{name}/{path.relative_to(root).as_posix()}\0".encode())
            digest.update(path.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()[:LENGTH]


def _package_root(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"package {name!r} is not importable")
    return Path(next(iter(spec.submodule_search_locations)))
