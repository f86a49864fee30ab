"""The numpy MiniLM against sentence-transformers' own output (kept in tests/data)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from aios.memory import minilm

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "minilm_reference.json"

pytestmark = pytest.mark.skipif(not minilm.available(), reason=minilm.INSTALL_HINT)


@pytest.fixture(scope="module")
def model() -> minilm.MiniLM:
    return minilm.MiniLM()


def test_matches_sentence_transformers(model: minilm.MiniLM) -> None:
    reference = json.loads(REFERENCE.read_text())
    ours = model.encode(reference["sentences"])
    theirs = np.asarray(reference["embeddings"], dtype=np.float32)
    cosines = (ours * theirs).sum(axis=1) / np.linalg.norm(theirs, axis=1)
    # The long sentence checks truncation at 256 tokens; the second, accents and CJK.
    assert cosines.min() >= 0.9999, cosines


def test_batching_and_padding_change_nothing(model: minilm.MiniLM) -> None:
    texts = ["short", "a much longer sentence that forces the short one to be padded in the batch"]
    batched = model.encode(texts)
    alone = np.stack([model.encode([text])[0] for text in texts])
    assert np.allclose(batched, alone, atol=1e-5)
    assert np.allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)


def test_paraphrase_is_nearer_than_an_unrelated_sentence(model: minilm.MiniLM) -> None:
    anchor, paraphrase, unrelated = model.encode(
        ["The customer wants their money back.", "The client asked for a refund.", "It rained in Oslo."]
    )
    assert anchor @ paraphrase > anchor @ unrelated + 0.3


def test_no_text_gives_no_rows(model: minilm.MiniLM) -> None:
    assert model.encode([]).shape == (0, minilm.DIMENSION)
