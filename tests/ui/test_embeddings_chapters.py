"""Pilot tests for the embedding chapters: open each at 80x24 and 100x30 on a tiny model, press its
keys, and read the screen."""

from __future__ import annotations

import re

import pytest
from ui_helpers import assert_drawn, chapter_app, read_screen


def _ok(text: str) -> None:
    assert_drawn(text)
    assert "⚠" not in text, text


async def _open(app, pilot, keys=()) -> str:
    text = await read_screen(app, pilot, keys)
    assert "⚠" not in text, text
    return text


def _flat(text: str) -> str:
    """The screen with line breaks and runs of spaces as single spaces (for wrapped prose)."""
    return re.sub(r"\s+", " ", text)


def _scroll_end(app, name: str) -> None:
    app.screen.query_one(f"#{name}-scroll").scroll_end(animate=False)


@pytest.mark.parametrize("family,size", [("gpt2", (80, 24)), ("llama", (100, 30))])
async def test_lookup_shows_the_row_and_the_one_hot_product(family, size) -> None:
    app = chapter_app("embeddings.lookup", family)
    async with app.run_test(size=size) as pilot:
        text = await _open(app, pilot)
        assert "257 rows × 32 numbers" in text
        assert "token #0 't' → id 116 → row 116" in text
        assert re.search(r"max \|difference\| 0\b", text), text
        text = await _open(app, pilot, ["right", "right"])
        assert "token #2 'e' → id 101" in text
        assert ("wpe.weight" in text) == (family == "gpt2")
        _scroll_end(app, "lookup")
        text = await _open(app, pilot)
        assert "= #0" in text  # 't' comes back later in the prompt: the same row


@pytest.mark.parametrize("family,size", [("gpt2", (80, 24)), ("llama", (100, 30))])
async def test_neighbours_falls_back_on_a_byte_vocabulary_and_draws_the_map(family, size) -> None:
    app = chapter_app("embeddings.neighbours", family)
    async with app.run_test(size=size) as pilot:
        text = await _open(app, pilot)
        # ' Paris' is six byte tokens here: the chapter says so and uses the prompt's last token
        assert "Nearest to 't'" in text and "is not one token here" in text
        assert "printable tokens" in text
        text = await _open(app, pilot, ["left"])
        assert "Nearest to 't' (id 116, the prompt's token #21)" in text
        text = await _open(app, pilot, ["left"])
        assert "the prompt's token #20" in text and "Nearest to 'a'" in text
        text = await _open(app, pilot, ["v"])
        assert "PCA of 20 words" in text and "letters" in text and "digits" in text
        assert "2-D map" in text


@pytest.mark.parametrize("family,size", [("gpt2", (80, 24)), ("llama", (100, 30))])
async def test_analogies_say_when_words_are_not_single_tokens(family, size) -> None:
    app = chapter_app("embeddings.analogies", family)
    async with app.run_test(size=size) as pilot:
        text = await _open(app, pilot)
        assert "king − man + woman = ?" in text and "unit vectors" in text
        assert "are not single tokens in this vocabulary" in _flat(text)
        text = await _open(app, pilot, ["n", "u"])
        assert "Paris − France + Italy = ?" in text and "raw vectors" in text
        assert "analogy 2 of 6" in text


@pytest.mark.parametrize("family,size", [("gpt2", (80, 24)), ("llama", (100, 30))])
async def test_unembedding_dot_products_equal_the_logits(family, size) -> None:
    app = chapter_app("embeddings.unembedding", family)
    async with app.run_test(size=size) as pilot:
        text = await _open(app, pilot)
        assert "position #21 't'" in text
        assert ("tied: the input embedding table again" in text) == (family == "gpt2")
        assert ("lm_head.weight" in text) == (family == "llama")
        diffs = [float(x) for x in re.findall(r"max \|difference\| ([0-9.e+-]+)", text)]
        diffs += [float(x) for x in re.findall(r"vs the forward pass: ([0-9.e+-]+)", text)]
        assert len(diffs) == 2 and max(diffs) < 1e-4, text
        text = await _open(app, pilot, ["left", "left"])
        assert "position #19 'm'" in text


@pytest.mark.parametrize("family,size", [("gpt2", (80, 24)), ("llama", (100, 30))])
async def test_contextual_follows_the_word_through_every_layer(family, size) -> None:
    app = chapter_app("embeddings.contextual", family)
    async with app.run_test(size=size) as pilot:
        text = await _open(app, pilot)
        assert "A We sat on the grassy bank of the river" in text
        assert "B She went to the bank to pay in her salary" in text
        embed_cos = float(re.search(r"cos\(A, B\): embedding ([0-9.]+)", text).group(1))
        # RoPE models start from the identical row; GPT-2 adds different position vectors
        assert (embed_cos == 1.0) == (family == "llama")
        _scroll_end(app, "contextual")
        text = await _open(app, pilot)
        assert "L1" in text  # the last of the two layers of the tiny model
        text = await _open(app, pilot, ["N"])  # back one: the last set is the prompt's last word
        app.screen.query_one("#contextual-scroll").scroll_home(animate=False)
        text = await _open(app, pilot)
        assert "B Here is the word mat" in text


@pytest.mark.parametrize("family,size", [("gpt2", (80, 24)), ("llama", (100, 30))])
async def test_sentence_matrix_and_pooling_keys(family, size) -> None:
    app = chapter_app("embeddings.sentence", family)
    async with app.run_test(size=size) as pilot:
        text = await _open(app, pilot)
        assert "mean pooling" in text and "cos(S1, S2) = " in text
        first = re.search(r"cos\(S1, S2\) = ([+-][0-9.]+)", text).group(1)
        text = await _open(app, pilot, ["o"])
        assert "last pooling" in text
        assert re.search(r"cos\(S1, S2\) = ([+-][0-9.]+)", text).group(1) != first
        text = await _open(app, pilot, ["z", "down", "right"])
        assert "centred" in text and "cos(S2, S3) = " in text
        assert "you" in text and "the cat sat on the mat" in text


@pytest.mark.parametrize("family,size", [("gpt2", (80, 24)), ("llama", (100, 30))])
async def test_retrieval_ranks_both_ways_and_builds_the_prompt(family, size) -> None:
    app = chapter_app("embeddings.retrieval", family)
    async with app.run_test(size=size) as pilot:
        text = await _open(app, pilot)
        assert "query: the cat sat on the mat" in text
        assert "model vectors (mean, centred)" in text and "TF-IDF (word counts)" in text
        assert re.search(r"6 test questions\): model \d/6 · TF-IDF \d/6", text)
        assert any(v in _flat(text) for v in ("rank better than word counts", "word counts beat the model",
                                              "both rank equally well"))
        text = await _open(app, pilot, ["n"])
        assert "query: Why does the sea level go up and down every day?" in text
        assert "query: question 1" in text
        _scroll_end(app, "retrieval")
        text = await _open(app, pilot)
        assert "Passage:" in text and "Question: Why does the sea level" in text


async def test_lookup_on_a_long_prompt_checks_the_one_hot_product_on_the_first_tokens() -> None:
    app = chapter_app("embeddings.lookup", "llama", prompt="abcdefghij" * 5)
    async with app.run_test(size=(80, 24)) as pilot:
        text = await _open(app, pilot, ["left"] + ["right"] * 40)
        assert "token #40 'a'" in text and "checked on the first 32 tokens" in text
