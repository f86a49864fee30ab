"""Qdrant: embedded (local mode) under the data directory by default, a server by URL."""

from __future__ import annotations

import httpx

from aios.settings import Settings


def describe(settings: Settings) -> str:
    if settings.qdrant_url is not None:
        return f"server at {settings.qdrant_url}"
    return f"embedded at {settings.resolved_qdrant_path.resolve()}"


def prepare(settings: Settings) -> str:
    """Embedded mode needs only its directory; a server must answer its readiness probe."""
    if settings.qdrant_url is None:
        settings.resolved_qdrant_path.mkdir(parents=True, exist_ok=True)
        return "ready (embedded, opened by the process that uses it)"
    return health(settings)


def health(settings: Settings) -> str:
    if settings.qdrant_url is None:
        path = settings.resolved_qdrant_path
        return "ready (embedded)" if path.is_dir() else "not prepared (run `aios dev up`)"
    try:
        response = httpx.get(f"{settings.qdrant_url.rstrip('/')}/readyz", timeout=3.0)
    except httpx.HTTPError as exc:
        return f"unreachable ({type(exc).__name__})"
    return "ready" if response.status_code == 200 else f"not ready (HTTP {response.status_code})"
