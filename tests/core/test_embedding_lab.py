"""Tests for the embedding experiments: lookups, neighbours, PCA, analogies, contexts, pooling,
retrieval and the unembedding, on tiny seeded models and hand-made tables."""

from __future__ import annotations

import numpy as np
import pytest

from fwdtui.core import embedding_lab as el
from fwdtui.testing import random_model


class WordTokenizer:
    """A vocabulary of whole words (' king', ' queen', ...) for a hand-made embedding table."""

    def __init__(self, words: list[str]) -> None:
        self.words = [" " + w for w in words]
        self.n_vocab = len(words)

    def token_bytes(self, token: int) -> bytes:
        return self.words[token].encode()

    def encode(self, text: str) -> list[int]:
        return [self.words.index(text)] if text in self.words else [0, 0]

    def decode(self, ids: list[int]) -> str:
        return "".join(self.words[i] for i in ids)


class TableModel:
    """Just enough of a Model for the table experiments: weights and a tokenizer."""

    def __init__(self, words: list[str], table: np.ndarray) -> None:
        self.weights = {"wte.weight": table.astype(np.float32)}
        self.tokenizer = WordTokenizer(words)


def royal_model() -> TableModel:
    # axes: royal, male, female, then noise; fillers are small random vectors far from the royals
    named = {"king": [1, 1, 0], "queen": [1, 0, 1], "man": [0, 1, 0], "woman": [0, 0, 1], "prince": [1, 0.8, 0.1]}
    rng = np.random.default_rng(0)
    fillers = [f"w{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(60)]
    words = list(named) + fillers
    table = np.zeros((len(words), 8))
    for i, w in enumerate(named):
        table[i, :3] = named[w]
    table[len(named):, 3:] = rng.standard_normal((len(fillers), 5))
    table += 0.01 * rng.standard_normal(table.shape)
    return TableModel(words, table)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_one_hot_product_is_the_row(family) -> None:
    model = random_model(family)
    table = el.embedding_matrix(model)
    for tid in (0, 97, 256):
        np.testing.assert_array_equal(el.one_hot_lookup(table, tid), table[tid])


def test_unembedding_matrix_is_tied_for_gpt2_and_not_for_the_random_llama() -> None:
    gpt2, llama = random_model("gpt2"), random_model("llama")
    assert el.unembedding_matrix(gpt2)[1] is True and el.unembedding_matrix(gpt2)[0] is gpt2.weights["wte.weight"]
    assert el.unembedding_matrix(llama)[1] is False and el.unembedding_matrix(llama)[0] is llama.weights["lm_head.weight"]


def test_byte_vocabulary_falls_back_to_printable_tokens() -> None:
    model = random_model("gpt2")
    index = el.embedding_index(model)
    assert not index.words_only
    assert len(index.candidates) == 95  # printable ASCII bytes 32..126; no whole words in 257 bytes
    assert el.embedding_index(model) is index  # built once per model
    nb = el.nearest(model, el.embedding_matrix(model)[ord("a")], k=5, exclude=[ord("a")])
    assert len(nb) == 5 and all(n.token_id != ord("a") for n in nb)
    assert [n.cosine for n in nb] == sorted((n.cosine for n in nb), reverse=True)


def test_nearest_and_the_analogy_on_a_hand_made_table() -> None:
    model = royal_model()
    index = el.embedding_index(model)
    assert index.words_only and len(index.candidates) == 65
    table = el.embedding_matrix(model)
    nb = el.nearest(model, table[0], k=2, exclude=[0])  # king
    assert [n.text for n in nb] == [" prince", " man"]  # cosines 0.99 and 0.71; queen is 0.5
    result = el.analogy(model, ("man", "king", "woman", "queen"))
    assert result.missing == () and result.expected_rank == 1 and result.top[0].text == " queen"
    assert result.expected_cos > 0.95
    missing = el.analogy(model, ("man", "king", "woman", "empress"))
    assert missing.missing == ("empress",) and missing.expected_rank == 0


def test_pca_finds_the_one_direction_of_points_on_a_line() -> None:
    rng = np.random.default_rng(1)
    direction = rng.standard_normal(6)
    x = np.outer(np.linspace(-2, 3, 20), direction) + 5.0  # points on a line, far from the origin
    coords, share = el.pca_2d(x)
    assert coords.shape == (20, 2)
    assert share[0] == pytest.approx(1.0, abs=1e-9) and share[1] == pytest.approx(0.0, abs=1e-9)
    spacing = np.diff(coords[:, 0])
    assert np.allclose(np.abs(spacing), np.linalg.norm(direction) * 5 / 19)


def test_word_map_on_a_byte_vocabulary_maps_letters_and_digits() -> None:
    wm = el.word_map(random_model("llama"))
    assert wm.words[:3] == ("a", "b", "c") and set(wm.groups) == {"letters", "digits"}
    assert wm.coords.shape == (20, 2) and "Monday" in wm.missing


def test_word_position_finds_the_word_inside_the_text() -> None:
    tok = random_model("gpt2").tokenizer
    assert el.word_position(tok, "the bank is here", "bank") == 7  # the 'k' of ' bank', byte by byte
    assert el.word_position(tok, "no such word", "bank") == 11  # falls back to the last token


def test_context_compare_starts_identical_for_a_rope_model() -> None:
    model = random_model("llama")
    r = el.context_compare(model, "bank", "a river bank", "my bank", text_n="bank")
    assert r.cos.shape == (model.config.n_layer + 1,)
    assert r.cos[0] == pytest.approx(1.0)  # the same row, and no position vector is added
    assert r.cos[-1] < 0.999  # attention has mixed in different contexts
    assert len(r.lens_a) == model.config.n_layer + 1 and r.token_a == r.token_b == "k"
    assert np.isfinite(r.neutral_cos).all()


def test_pooling_and_cached_hidden_states() -> None:
    model = random_model("gpt2")
    h = el.cached_hidden_states(model, "hello")
    assert el.cached_hidden_states(model, "hello") is h and h.shape == (5, model.config.n_embd)
    np.testing.assert_allclose(h, model.trace(list(b"hello"))["ln_final.out"])
    np.testing.assert_allclose(el.pool(h, "mean"), h.mean(axis=0))
    np.testing.assert_array_equal(el.pool(h, "last"), h[-1])
    vecs = el.embed_texts(model, ["hello", "hi"])
    assert vecs.shape == (2, model.config.n_embd)
    assert el.embed_texts(model, ["hello"], cancelled=lambda: True) is None
    assert np.allclose(el.centred(vecs).sum(axis=0), 0.0, atol=1e-5)


def test_tfidf_ranks_the_passage_that_shares_a_rare_word() -> None:
    docs = ["the cat sat on the mat", "the dog ran in the park", "the bird sang in the tree"]
    d, q, vocab = el.tfidf_vectors(docs, ["where did the dog run"])
    order, sims = el.rank(q[0], d)
    assert order[0] == 1 and sims[1] > 0 and sims[0] == 0.0  # 'the' is everywhere: alone it scores nothing
    the = vocab.index("the")
    assert d[0, the] == 0.0 and d[0, vocab.index("cat")] == pytest.approx(np.log(2.0))


def test_rank_orders_by_cosine_and_rag_prompt_fills_the_template() -> None:
    docs = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    order, sims = el.rank(np.array([0.0, 2.0]), docs)
    assert list(order) == [2, 1, 0] and sims[1] == pytest.approx(0.8)
    text = el.rag_prompt("Bees make honey.", "Who makes honey?")
    assert "Passage: Bees make honey.\nQuestion: Who makes honey?" in text
    assert len(el.DOCUMENTS) >= 10 and {a for _, a in el.QUESTIONS} <= {n for n, _ in el.DOCUMENTS}


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_dot_products_with_unembedding_rows_are_the_logits(family) -> None:
    model = random_model(family)
    ids = list(b"the cat sat")
    trace = model.trace(ids)
    u = el.unembed_position(model, trace, -1, k=6)
    assert u.position == len(ids) - 1
    np.testing.assert_allclose(u.dots, trace["logits"][-1][list(u.top)], rtol=1e-4, atol=1e-4)
    assert u.trace_diff < 1e-4
    assert list(u.top) == list(np.argsort(-trace["logits"][-1], kind="stable")[:6])
    matrix, tied = el.unembedding_matrix(model)
    np.testing.assert_allclose(u.dots, matrix[list(u.top)] @ u.normed, rtol=1e-6)
    assert u.tied == (family == "gpt2")
