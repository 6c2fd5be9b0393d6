"""The chapters that lean on tokenizers, on a model with a SentencePiece tokenizer (no merge list, "▁" spaces)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_sentencepiece import write_spm_gguf
from ui_helpers import chapter_app, read_screen

import fwdtui

PROMPT = "The cat sat on the mat"


@pytest.fixture(scope="module")
def spm_model(tmp_path_factory: pytest.TempPathFactory):
    path: Path = tmp_path_factory.mktemp("spm") / "spm-tiny.gguf"
    write_spm_gguf(path, with_model=True)
    return fwdtui.load_model(path)


async def _screen(model, chapter: str, keys: list[str] = ()) -> str:
    app = chapter_app(chapter, model=model, prompt=PROMPT)
    async with app.run_test(size=(100, 30)) as pilot:
        return await read_screen(app, pilot, keys)


async def test_byte_level_shows_the_models_pieces(spm_model) -> None:
    text = await _screen(spm_model, "tokenizer.bytes", ["t", "v"])  # the model's tokenizer, the tokens view
    assert "the model's (spm-tiny):" in text
    # the vocabulary's own spellings ("▁cat", "<0xE3>"), not GPT-2's byte-to-unicode ones ("Ġcat", "ã")
    table = text[text.index("vocab form"):]
    assert ("\u2581" in table or "<0x" in table) and "\u0120" not in table


async def test_merge_rules_skip_a_tokenizer_without_merges(spm_model) -> None:
    """No merge list to replay: the chapter falls back to GPT-2's rules or ours, and says which."""
    text = await _screen(spm_model, "tokenizer.merge-rules")
    assert "tokenizer: GPT-2's" in text or "tokenizer: ours" in text
    assert "tokenizer: the model's" not in text
    assert "is a SentencePiece tokenizer: it has no merge list" in text


async def test_compare_lists_the_model(spm_model) -> None:
    n = len(spm_model.tokenizer.encode(PROMPT))
    assert f"model: spm {n}" in await _screen(spm_model, "tokenizer.compare")


async def test_special_tokens_lists_bos_eos_and_controls(spm_model) -> None:
    text = await _screen(spm_model, "tokenizer.special-tokens")
    assert "5 special tokens · BOS 1 · EOS 2" in text and "[INST]" in text and "<unk>" in text


async def test_vocab_size_measures_the_model(spm_model) -> None:
    text = await _screen(spm_model, "tokenizer.vocab-size")
    assert "model: spm-" in text and "640 × 32" in text


async def test_journey_counts_the_models_tokens(spm_model) -> None:
    from fwdtui.prompt import prepare_prompt

    ids = prepare_prompt(spm_model, PROMPT).ids  # <s> first: the GGUF says add_bos_token, as Llama 2's do
    assert ids[0] == spm_model.tokenizer.bos_id and len(ids) == len(spm_model.tokenizer.encode(PROMPT)) + 1
    assert f"{len(ids)} tokens to come" in await _screen(spm_model, "transformer.journey")


async def test_embedding_chapters_draw(spm_model) -> None:
    assert "Nearest to" in await _screen(spm_model, "embeddings.neighbours")
    assert "token #0 '<s>'" in await _screen(spm_model, "embeddings.lookup")
