"""Prompts a user can type or pass: empty, too long, invisible, undecodable, right-to-left, huge words.

Through `fwdtui.prompt.prepare_prompt` (what the app and the CLI both call) and the CLI itself.
A prompt is either taken, with a notice for anything changed or unusual, or refused with PromptError.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from fwdtui import load_model
from fwdtui.errors import PromptError
from fwdtui.prompt import clean_text, prepare_prompt

from .helpers import assert_clear_error, expect_fwdtui_error, run_cli

GPT2_DIR = Path(os.environ.get("FWDTUI_GPT2_TOKENIZER_DIR", "/work/shared/data/gpt2"))


@pytest.fixture(scope="module")
def model(tiny_gpt2: Path):
    """The tiny GPT-2 folder: a real byte-level BPE tokenizer (10 merges) and a 64-token context."""
    return load_model(str(tiny_gpt2))


@pytest.fixture(scope="module")
def gpt2_model():
    """The real GPT-2 tokenizer in front of a stand-in with GPT-2's 1024-token context."""
    if not (GPT2_DIR / "encoder.json").is_file() and not (GPT2_DIR / "vocab.json").is_file():
        pytest.skip("GPT-2 tokenizer files not found")
    from fwdtui.tokenizers import load_tokenizer

    return SimpleNamespace(tokenizer=load_tokenizer(GPT2_DIR), config=SimpleNamespace(n_ctx=1024))


# --- empty and long -----------------------------------------------------------------------------


def test_empty_prompt_is_refused(model) -> None:
    err = expect_fwdtui_error(prepare_prompt, model, "")
    assert isinstance(err, PromptError) and "empty" in err.message and "press p" in err.fix


def test_whitespace_is_a_prompt(model) -> None:
    assert prepare_prompt(model, " ").ids == [32]
    assert prepare_prompt(model, "\n\n").notices == []


@pytest.mark.parametrize("extra", [0, 1, 500])
def test_longer_than_the_context_keeps_the_end_with_a_notice(model, extra: int) -> None:
    n_ctx = model.config.n_ctx  # 64; one letter is one token here
    text = "".join(chr(ord("a") + i % 7) for i in range(n_ctx + extra))
    prepared = prepare_prompt(model, text)
    assert prepared.ids == model.tokenizer.encode(text)[-n_ctx:]
    assert model.tokenizer.decode(prepared.ids) == text[-n_ctx:]
    if extra:
        (note,) = prepared.notices
        assert f"had {n_ctx + extra} tokens" in note and f"first {extra} were dropped" in note
    else:
        assert prepared.notices == []


def test_room_for_new_tokens_is_capped_at_half_the_context(model) -> None:
    text = "x" * 50
    assert len(prepare_prompt(model, text, reserve=10).ids) == 50  # 50 + 10 fit in 64
    assert len(prepare_prompt(model, text, reserve=20).ids) == 44  # keep 20 free
    prepared = prepare_prompt(model, text, reserve=10**9)  # an absurd request keeps half the prompt
    assert len(prepared.ids) == 32 and "leaving 32 for new tokens" in prepared.notices[0]
    assert len(prepare_prompt(model, text, reserve=-5).ids) == 50


def test_a_huge_single_word(model) -> None:
    """100 000 characters with no space: one pre-token for the BPE; fast, and cut to the context."""
    word = "".join(chr(ord("a") + (i * 7919) % 26) for i in range(100_000))
    start = time.perf_counter()
    prepared = prepare_prompt(model, word)
    assert time.perf_counter() - start < 5
    assert len(prepared.ids) == model.config.n_ctx
    assert word.endswith(model.tokenizer.decode(prepared.ids))
    assert "were dropped" in prepared.notices[0]


def test_a_huge_single_word_with_gpt2(gpt2_model) -> None:
    for word in ("a" * 100_000, "ab" * 50_000, "\u05e9\u05dc\u05d5\u05dd" * 25_000, "\U0001f600" * 30_000):
        start = time.perf_counter()
        prepared = prepare_prompt(gpt2_model, word)
        assert time.perf_counter() - start < 5
        assert len(prepared.ids) == 1024 and word.endswith(gpt2_model.tokenizer.decode(prepared.ids))


# --- invisible, undecodable and unusual characters ----------------------------------------------


@pytest.mark.parametrize("text, first", [("a\x00b", "NUL"), ("\x1b[31mred\x1b[0m", "U+001B"), ("bell\x07", "U+0007"),
                                         ("del\x7f", "U+007F"), ("next\x85line", "U+0085"), ("\x00" * 10, "NUL")])
def test_control_characters_are_kept_and_named(model, text: str, first: str) -> None:
    prepared = prepare_prompt(model, text)
    assert prepared.text == text
    assert model.tokenizer.decode(prepared.ids) == text  # the model reads exactly what was typed
    (note,) = prepared.notices
    assert f"first: {first}" in note and "kept" in note


def test_tabs_and_newlines_are_not_worth_a_notice(model) -> None:
    assert prepare_prompt(model, "a\tb\nc\r\n").notices == []


@pytest.mark.parametrize(
    "text, cleaned",
    [
        ("\ud800", "\ufffd"),  # a lone high surrogate
        ("\udfff", "\ufffd"),  # a lone low surrogate
        ("a\ud800b\udc00c", "a\ufffdb\ufffdc"),
        ("caf" + "\udce9", "caf\ufffd"),  # argv byte 0xE9 (Latin-1 é) escaped by Python
        ("caf\udcc3\udca9", "caf\u00e9"),  # escaped bytes that do form UTF-8 are decoded together
        ("\udcff\udcfe", "\ufffd\ufffd"),
    ],
)
def test_surrogates_become_replacement_characters(model, text: str, cleaned: str) -> None:
    prepared = prepare_prompt(model, text)
    assert prepared.text == cleaned
    assert prepared.text.encode("utf-8")  # encodable now
    # a notice exactly when something was lost (escaped bytes that form UTF-8 lose nothing)
    assert any("not valid UTF-8" in n for n in prepared.notices) == ("\ufffd" in cleaned)
    assert model.tokenizer.decode(prepared.ids) == cleaned


def test_a_spelled_out_surrogate_pair_is_the_character(model) -> None:
    prepared = prepare_prompt(model, "smile \ud83d\ude00")
    assert prepared.text == "smile \U0001f600" and prepared.notices == []


@pytest.mark.parametrize(
    "text",
    [
        "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd",  # Hebrew
        "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",  # Arabic
        "abc \u202eevil\u202c def \u200f\u200e",  # bidi override and marks
        "e\u0301 a\u0300\u0316\u0317 " + "z" + "\u0336" * 20,  # combining marks, "zalgo"
        "\U0001f468\u200d\U0001f469\u200d\U0001f467 \U0001f1eb\U0001f1f7",  # ZWJ family, flag
        "\ufeffBOM and\u00a0nbsp and\u3000ideographic space",
        "\uffff\U0010ffff\ue000",  # noncharacters and private use
    ],
    ids=["hebrew", "arabic", "bidi", "combining", "emoji", "spaces", "nonchars"],
)
def test_unusual_unicode_round_trips(model, gpt2_model, text: str) -> None:
    for m in (model, gpt2_model):
        prepared = prepare_prompt(m, text)
        assert prepared.text == text and prepared.notices == []
        assert m.tokenizer.decode(prepared.ids) == text


def test_everything_at_once(model) -> None:
    text = "\x00" + "\ud800" + "x" * 100
    prepared = prepare_prompt(model, text)
    assert len(prepared.notices) == 3  # undecodable, control character, cut to the context
    assert len(prepared.ids) == 64


def test_clean_text_is_idempotent() -> None:
    for text in ("\ud800abc", "caf\udce9", "ok", "\x00"):
        once, _ = clean_text(text)
        twice, notes = clean_text(once)
        assert twice == once and not any("UTF-8" in n for n in notes)


# --- the command line ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["step", "generate"])
def test_cli_empty_prompt(capsys, tiny_gpt2: Path, command: str) -> None:
    assert_clear_error(*run_cli(capsys, command, "-m", str(tiny_gpt2), ""), needle="The prompt is empty")


def test_cli_long_prompt_note(capsys, tiny_gpt2: Path) -> None:
    code, out, err = run_cli(capsys, "generate", "-m", str(tiny_gpt2), "-t", "0", "-n", "100", "ab " * 100)
    assert code == 0
    notes = [line for line in err.splitlines() if line.startswith("note: ")]
    assert any("were dropped" in n for n in notes)
    assert any("only 32 new tokens fit in the 64-token context" in n for n in notes)


def test_cli_control_characters_in_process(capsys, tiny_gpt2: Path) -> None:
    """NUL cannot come through a real argv (C strings end at it), but the app's input and scripts can pass it."""
    code, out, err = run_cli(capsys, "tokenize", "-m", str(tiny_gpt2), "a\x00b\x1b")
    assert code == 0 and "first: NUL" in err
    assert out.splitlines()[0].startswith("4 tokens")
    assert "'\\x00'" in out and "'\\x1b'" in out  # shown escaped, never sent raw to the terminal


def test_cli_surrogates_in_process(capsys, tiny_gpt2: Path) -> None:
    code, out, err = run_cli(capsys, "step", "-m", str(tiny_gpt2), "hi \ud800 there")
    assert code == 0 and "Traceback" not in err
    assert "not valid UTF-8" in out  # step prints its notes with the rest of its report


def test_undecodable_argv_bytes_in_a_real_process(tiny_gpt2: Path) -> None:
    """Bytes that are not UTF-8, as a shell in a Latin-1 locale would pass them."""
    arg = b"caf\xe9 \xff\xfe na\xefve".decode("utf-8", "surrogateescape")
    for command in (["step", "-m", str(tiny_gpt2), arg], ["generate", "-m", str(tiny_gpt2), "-n", "3", "-t", "0", arg]):
        result = subprocess.run([sys.executable, "-m", "fwdtui", *command], capture_output=True,
                                env={**os.environ, "PYTHONIOENCODING": "utf-8"}, timeout=60)
        stderr = result.stderr.decode("utf-8", "replace")
        assert result.returncode == 0, stderr
        assert "Traceback" not in stderr
        assert "not valid UTF-8" in stderr + result.stdout.decode("utf-8", "replace")
    assert result.stdout.decode("utf-8").startswith("caf\ufffd \ufffd\ufffd na\ufffdve")


@pytest.mark.parametrize("extra", [0, 40])
def test_a_tokenizer_that_asks_for_bos_gets_it_first_even_when_cut(extra: int) -> None:
    from fwdtui.testing import ByteTokenizer, random_model

    tok = ByteTokenizer()
    tok.bos_id, tok.add_bos = 255, True  # as a Llama 2 / Mistral GGUF says: add_bos_token
    model = random_model("llama", n_ctx=64)
    model.tokenizer = tok
    text = "x" * (30 + extra)
    prepared = prepare_prompt(model, text)
    assert prepared.ids[0] == 255 and prepared.ids[1:] == [ord("x")] * (len(prepared.ids) - 1)
    assert len(prepared.ids) == min(31 + extra, 64)
    assert bool(prepared.notices) == (31 + extra > 64)
    tok.add_bos = False
    assert prepare_prompt(model, "xy").ids == [ord("x"), ord("y")]
