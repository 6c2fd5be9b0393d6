"""Pilot tests for the six tokenizer chapters: open each at 80x24 and 100x30, press its keys, read the screen."""

from __future__ import annotations

import functools

import pytest
from ui_helpers import assert_drawn, chapter_app, read_screen, screen_text, settle

from fwdtui.testing import random_model
from fwdtui.tokenizers import compare, openai_files

SIZES = [(80, 24), (100, 30)]
has_gpt2 = compare.gpt2_dir() is not None
has_openai = all(openai_files.available().values())


# These chapters need no model: by default none is loaded, and the app's own prompt is used.
_app = functools.partial(chapter_app, family=None, prompt=None)


# --------------------------------------------------------------------------- 1 BPE from raw bytes


@pytest.mark.parametrize("size", SIZES)
async def test_bpe_merges_one_per_key(size) -> None:
    app = _app("tokenizer.bpe")
    async with app.run_test(size=size) as pilot:
        text = await read_screen(app, pilot)
        assert "0 merges" in text and "vocab 256" in text
        assert "bytes/token" in text
        await pilot.press("space")
        await settle(pilot)
        text = screen_text(app)
        # the sample text's most frequent pair is a space and 't' (124 times)
        assert "1 merge · vocab 257" in text
        assert "merge 1: '·' + 't' → '·t' id 256, seen 124×" in text
        assert "next pairs: '·'+'a' 101" in text  # and that is what merge 2 will be
        await pilot.press("space")
        await settle(pilot)
        assert "merge 2: '·' + 'a' → '·a' id 257" in screen_text(app)
        # the pair merged second was the top "next pair" after the first merge
        assert app.screen.result.steps[1].count == 101
        await pilot.press("b")
        await settle(pilot)
        assert "1 merge · vocab 257" in screen_text(app)


async def test_bpe_run_to_n_and_reset() -> None:
    app = _app("tokenizer.bpe")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        text = screen_text(app)
        assert "100 merges · vocab 356" in text
        chapter = app.screen
        assert len(chapter.result.steps) == 100
        # compression only grows with merges
        comp = chapter.result.compression
        assert all(b >= a for a, b in zip(comp, comp[1:])) and comp[-1] > 1.5
        await pilot.press("0")
        await settle(pilot)
        assert "0 merges · vocab 256" in screen_text(app)


async def test_bpe_trains_on_a_long_prompt() -> None:
    prompt = "the cat sat on the mat and the cat ate the rat. " * 12
    app = _app("tokenizer.bpe", prompt=prompt)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("space")
        await settle(pilot)
        text = screen_text(app)
        assert "your prompt" in text
        assert "merge 1: 'a' + 't' → 'at'" in text  # "at" in cat, sat, mat, ate, rat
        await pilot.press("t")  # switch to the sample text
        await settle(pilot)
        assert "sample text" in screen_text(app)


# --------------------------------------------------------------------------- 2 merge rules


@pytest.mark.skipif(not has_gpt2, reason="GPT-2 tokenizer files not found")
@pytest.mark.parametrize("size", SIZES)
async def test_merge_rules_steps_gpt2_and_matches_tiktoken(size) -> None:
    # the random model's tokenizer is bytes only: the chapter falls back to GPT-2's files
    app = _app("tokenizer.merge-rules", model=random_model("gpt2"), prompt="Hello, world! Hello")
    async with app.run_test(size=size) as pilot:
        text = await read_screen(app, pilot)
        assert "GPT-2's (50,000 rules)" in text
        assert "step 0/" in text and "raw bytes" in text
        await pilot.press("space")
        await settle(pilot)
        text = screen_text(app)
        # "Hello, world! Hello": the lowest-ranked rule that matches is 'l'+'l' ... whichever it
        # is, its rank is shown, and it must be the lowest rank among the rules that fired
        first = app.screen.result.steps[1]
        assert "step 1/" in text and f"rank {first.rank:,}" in text
        ranks = [s.rank for s in app.screen.result.steps[1:]]
        assert ranks == sorted(ranks)
        await pilot.press("e")
        await settle(pilot)
        text = screen_text(app)
        assert "✓ our rank-by-rank ids equal tiktoken on GPT-2's files: 15496 11 995 0 18435" in text
        assert "no rule matches any more" in text


async def test_merge_rules_with_our_own_tokenizer() -> None:
    app = _app("tokenizer.merge-rules", model=random_model("gpt2"))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.screen.source = "ours"
        app.screen.recompute()
        text = await read_screen(app, pilot)
        assert "ours (500 rules on the sample)" in text
        await pilot.press("e")
        await settle(pilot)
        assert "✓ our rank-by-rank ids equal tiktoken with our ranks" in screen_text(app)
        await pilot.press("b")
        await settle(pilot)
        steps = app.screen.result.steps
        assert f"step {len(steps) - 2}/{len(steps) - 1}" in screen_text(app)


# --------------------------------------------------------------------------- 3 byte-level encoding


@pytest.mark.parametrize("size", SIZES)
async def test_bytes_views(size) -> None:
    app = _app("tokenizer.bytes", model=random_model("gpt2"))  # the default prompt is ASCII
    async with app.run_test(size=size) as pilot:
        text = await read_screen(app, pilot)
        assert "demo text" in text
        # ï is two bytes, c3 af, and GPT-2 spells them Ã¯
        assert "c3 af" in text and "Ã¯" in text and "00EF" in text
        await pilot.press("v")
        await settle(pilot)
        text = screen_text(app)
        if has_gpt2:
            assert "GPT-2: 29 tokens · 4 character(s) split over tokens" in text
            assert "ĠðŁĳ" in text and "part of 👍" in text  # GPT-2's vocab form of ' \xf0\x9f\x91'
        else:
            assert "bytes only" in text
        await pilot.press("v")
        await settle(pilot)
        text = screen_text(app)
        assert "GPT-2: 15 pieces" in text
        assert "123 456 7" in text  # GPT-4 cuts digits in threes
        assert "camel Case" in text  # GPT-4o cuts at the case change


async def test_bytes_on_the_users_prompt() -> None:
    app = _app("tokenizer.bytes", prompt="héllo wörld")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        text = screen_text(app)
        assert "11 characters · 13 bytes · your prompt" in text
        assert "c3 a9" in text and "c3 b6" in text
        await pilot.press("d")
        await settle(pilot)
        assert "demo text" in screen_text(app)


# --------------------------------------------------------------------------- 4 vocabulary design


@pytest.mark.parametrize("size", SIZES)
async def test_vocab_size_chart_and_scripts(size) -> None:
    app = _app("tokenizer.vocab-size", model=random_model("gpt2"))
    async with app.run_test(size=size) as pilot:
        text = await read_screen(app, pilot)
        assert "bytes per token on the sample text" in text
        assert "ours 256" in text and "1.00" in text  # bytes only: one byte per token
        study = app.screen.result
        ours = [r for r in study.rows if r.trained_here]
        assert [r.vocab_size for r in ours] == [256, 512, 1024, 2048, 4096, 8192]
        bpt = [r.bytes_per_token for r in ours]
        assert bpt == sorted(bpt) and bpt[-1] > 3.5  # more merges, more bytes per token
        # the random model is 32 wide: its table for 8,192 tokens is 262,144 parameters
        assert "8,192 × 32 =" in text
        await pilot.press("plus")
        await settle(pilot)
        assert "8,192 × 576 =" in screen_text(app)
        await pilot.press("v")
        await settle(pilot)
        text = screen_text(app)
        assert "tokens for the same sentence" in text
        assert "English" in text and "Hindi" in text and "ours 8,192" in text
        if has_openai:
            row = next(s for s in study.scripts if s.name == "o200k_base")
            hindi = study.languages.index("Hindi")
            gpt4 = next(s for s in study.scripts if s.name == "cl100k_base")
            assert row.n_tokens[hindi] < gpt4.n_tokens[hindi]


# --------------------------------------------------------------------------- 5 special tokens


@pytest.mark.parametrize("size", SIZES)
async def test_special_tokens_with_byte_model(size) -> None:
    # the random model's tokenizer: bytes plus <|endoftext|> = 256, no chat template
    app = _app("tokenizer.special-tokens", model=random_model("gpt2"), prompt="Hello")
    async with app.run_test(size=size) as pilot:
        text = await read_screen(app, pilot)
        assert "1 special tokens · BOS none · EOS 256" in text
        assert "<|endoftext|>" in text
        await pilot.press("v")
        await settle(pilot)
        text = screen_text(app)
        assert "chat template: none (a base model)" in text
        assert "User:·Hello↵" in text
        await pilot.press("v")
        await settle(pilot)
        text = screen_text(app)
        # "Hi<|endoftext|>A new document begins": 36 bytes stay 36 byte ids with encode
        assert "encode (what user text goes through): 36 ids, 0 special" in text
        assert "encode_with_special (templates only): 24 ids, 1 special: 256" in text
        study = app.screen.result
        assert 256 not in study.forged_plain and 256 in study.forged_special


class _ChatTokenizer:
    """A byte tokenizer with ChatML specials, standing in for SmolLM2 in tests."""

    def __init__(self) -> None:
        from fwdtui.testing import ByteTokenizer

        self._bytes = ByteTokenizer()
        self.name = "chatml-bytes"
        self.special_tokens = {"<|endoftext|>": 256, "<|im_start|>": 257, "<|im_end|>": 258}
        self.bos_id, self.eos_id = 257, 258
        self.n_vocab = 259
        self.chat_template = "{{ '<|im_start|>' + message['role'] }}<|im_end|>"

    def encode(self, text: str) -> list[int]:
        return self._bytes.encode(text)

    def encode_with_special(self, text: str) -> list[int]:
        import re

        out: list[int] = []
        for k, part in enumerate(re.split(r"(<\|endoftext\|>|<\|im_start\|>|<\|im_end\|>)", text)):
            out += [self.special_tokens[part]] if k % 2 else self._bytes.encode(part)
        return out

    def token_bytes(self, token_id: int) -> bytes:
        names = {i: s for s, i in self.special_tokens.items()}
        return names[token_id].encode() if token_id in names else bytes([token_id])


async def test_special_tokens_chatml_forgery_is_not_a_turn_end() -> None:
    model = random_model("gpt2")
    model.tokenizer = _ChatTokenizer()
    app = _app("tokenizer.special-tokens", model=model, prompt="Hi")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("v")
        await settle(pilot)
        text = screen_text(app)
        assert "chat template: ChatML" in text
        assert "<|im_start|>user↵" in text
        study = app.screen.result
        assert study.chat_ids[:1] == (257,) and study.chat_ids.count(258) == 1
        await pilot.press("v")
        await settle(pilot)
        text = screen_text(app)
        assert "Hi<|im_end|>↵<|im_start|>assistant" in text
        assert "0 special" in text and "2 special: 258 257" in text


# --------------------------------------------------------------------------- 6 comparing tokenizers


@pytest.mark.parametrize("size", SIZES)
async def test_compare_aligned_and_summary(size) -> None:
    prompt = "The naïve café 👍 camelCase 1234567"
    app = _app("tokenizer.compare", model=random_model("gpt2"), prompt=prompt)
    async with app.run_test(size=size) as pilot:
        text = await read_screen(app, pilot)
        cmp = app.screen.result
        labels = [r.label.split(" (")[0] for r in cmp.rows]
        # the random model's byte tokenizer is listed as "model: random-gpt2"; ours is trained now
        assert "model: random-gpt2" in labels and "ours" in labels
        byte_row = next(r for r in cmp.rows if r.label.startswith("model"))
        assert byte_row.tok.n_tokens == len(prompt.encode("utf-8"))
        assert "all cut:" in text and "The·naïve·café" in text
        # a byte tokenizer cuts everywhere, so where all cut = where the others all cut
        assert cmp.agreed[0] is False and cmp.agreed[3] is True  # before " naïve"
        if has_gpt2:
            assert "GPT-2" in labels
        if has_openai:
            assert "cl100k_base" in labels and "o200k_base" in labels
            o200k = next(r for r in cmp.rows if r.label.startswith("o200k"))
            assert o200k.tok.ids == tuple(compare.candidates(keys=("o200k_base",))[0].tokenizer.encode(prompt))
        await pilot.press("v")
        await settle(pilot)
        text = screen_text(app)
        assert "bytes/tok" in text and "same cuts as" in text
        assert f"{len(prompt.encode()):>8}" in text  # the byte tokenizer's count in the table


async def test_compare_uses_the_tokenizer_trained_in_the_bpe_chapter() -> None:
    app = _app("tokenizer.bpe", prompt="hello hello hello")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("n")  # 100 merges on the sample text
        await settle(pilot)
        app.open_chapter("tokenizer.compare")
        await settle(pilot)
        cmp = app.screen.result
        ours = next(r for r in cmp.rows if r.label.startswith("ours"))
        assert ours.vocab == 356 and not cmp.trained_now
        assert "ours" in screen_text(app)


async def test_compare_pages_through_a_long_prompt() -> None:
    prompt = " ".join(f"word{i}" for i in range(200))
    app = _app("tokenizer.compare", prompt=prompt)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert "page 1/" in screen_text(app)
        await pilot.press("right")
        await settle(pilot)
        assert "page 2/" in screen_text(app)


# --------------------------------------------------------------------------- all six


TOKENIZER_IDS = ["tokenizer.bpe", "tokenizer.merge-rules", "tokenizer.bytes", "tokenizer.vocab-size",
                 "tokenizer.special-tokens", "tokenizer.compare"]


def test_all_six_are_registered_in_course_order() -> None:
    import fwdtui.chapters as chapters
    from fwdtui.chapters.base import SECTIONS_BY_ID, section_entries

    assert "tokenizer" not in chapters.LOAD_ERRORS
    entries = section_entries(SECTIONS_BY_ID["tokenizer"])
    assert [e.id for e in entries] == TOKENIZER_IDS
    assert all(e.written and e.cls.NEEDS_MODEL is False for e in entries)


@pytest.mark.parametrize("chapter", TOKENIZER_IDS)
async def test_each_opens_without_a_model_at_80x24(chapter) -> None:
    app = _app(chapter)  # no model, nothing loading
    async with app.run_test(size=(80, 24)) as pilot:
        text = await read_screen(app, pilot)
        assert "needs a model" not in text
        assert app.screen.result is not None  # it computed something without a model
        await pilot.press("c")  # the code panel opens on the real source
        await settle(pilot)
        assert_drawn(screen_text(app))
