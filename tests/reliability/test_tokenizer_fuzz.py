"""Hypothesis against the tokenizers: any string round-trips, every id is in range, bytes add up.

Run on the tiny byte-level BPE that `write_tiny_model_folder` writes (256 bytes + 10 merges),
on the byte tokenizer of the random test models, and on the real GPT-2 files when present.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fwdtui.testing import ByteTokenizer
from fwdtui.tokenizers import load_tokenizer

FUZZ = settings(max_examples=200, deadline=None, derandomize=True)
GPT2_DIR = Path(os.environ.get("FWDTUI_GPT2_TOKENIZER_DIR", "/work/shared/data/gpt2"))
EOT = "<|endoftext|>"

# Any Unicode text but surrogates (which cannot be encoded; see the test for them below), with
# the characters tokenizers trip over drawn more often than chance would draw them.
tricky = st.sampled_from(["<|endoftext|>", "<|endoftext", "|>", " ", "  ", "\n", "\r\n", "\t", "\x00", "'s", "'ll",
                          "\u00e9", "e\u0301", "\u05e9\u05dc", "\u202e", "\ufeff", "\U0001f600", "\u200d", "123",
                          "\uffff", "\U0010ffff", "Ġ", "Ċ"])
texts = st.one_of(st.text(max_size=80), st.lists(st.one_of(tricky, st.text(max_size=4)), max_size=20).map("".join))


@pytest.fixture(scope="module")
def tiny_bpe(tiny_gpt2: Path):
    return load_tokenizer(tiny_gpt2)


@pytest.fixture(scope="module")
def gpt2_bpe():
    if not any((GPT2_DIR / n).is_file() for n in ("vocab.json", "encoder.json", "tokenizer.json")):
        pytest.skip(f"no GPT-2 tokenizer files in {GPT2_DIR}")
    return load_tokenizer(GPT2_DIR)


def check_round_trip(tok, text: str) -> None:
    ids = tok.encode(text)
    assert all(isinstance(i, int) and 0 <= i < tok.n_vocab for i in ids)
    assert tok.decode(ids) == text
    assert b"".join(tok.token_bytes(i) for i in ids) == text.encode("utf-8")
    assert not set(ids) & set(tok.special_tokens.values())  # "<|endoftext|>" typed by a user is plain text
    special = tok.encode_with_special(text)
    assert all(0 <= i < tok.n_vocab for i in special)
    assert tok.decode(special) == text
    assert special.count(tok.special_tokens[EOT]) == text.count(EOT)


@FUZZ
@given(text=texts)
def test_tiny_bpe_round_trips(tiny_bpe, text: str) -> None:
    check_round_trip(tiny_bpe, text)


@FUZZ
@given(text=texts)
def test_gpt2_round_trips(gpt2_bpe, text: str) -> None:
    check_round_trip(gpt2_bpe, text)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(text=texts)
def test_byte_tokenizer_round_trips(text: str) -> None:
    check_round_trip(ByteTokenizer(), text)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(ids=st.lists(st.integers(0, 266), max_size=40))
def test_any_ids_decode(tiny_bpe, ids: list[int]) -> None:
    """Any valid ids decode (split characters become U+FFFD); their bytes are exactly the tokens' bytes."""
    text = tiny_bpe.decode(ids)
    assert isinstance(text, str)
    raw = b"".join(tiny_bpe.token_bytes(i) for i in ids)
    assert text == raw.decode("utf-8", "replace")


@settings(max_examples=100, deadline=None, derandomize=True)
@given(text=st.text(alphabet=st.characters(categories=["Cs", "Ll", "Zs"]), max_size=30))
def test_surrogates_do_not_crash_encode(tiny_bpe, gpt2_bpe, text: str) -> None:
    """Lone surrogates (reaching a tokenizer without going through prepare_prompt): ids, not an exception."""
    for tok in (tiny_bpe, gpt2_bpe):
        ids = tok.encode(text)
        assert all(0 <= i < tok.n_vocab for i in ids)
        expected = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)
        assert tok.decode(ids) == expected


@pytest.mark.parametrize("text, ids", [("the cat", [116, 257, 265]), (" cat", [265]), ("", [])])
def test_tiny_bpe_worked_examples(tiny_bpe, text: str, ids: list[int]) -> None:
    """The merges apply as listed: t + he, and Ġc + at (ids 256 onwards, in merge order)."""
    assert tiny_bpe.encode(text) == ids


def test_gpt2_known_ids(gpt2_bpe) -> None:
    assert gpt2_bpe.encode("Hello, world!") == [15496, 11, 995, 0]
    assert gpt2_bpe.encode(EOT) != [50256] and gpt2_bpe.encode_with_special(EOT) == [50256]


# --- damaged tokenizer files: our error or a working tokenizer, in bounded time and memory ---------


def _tokenizer_folder(tmp_path: Path, tiny_gpt2: Path) -> Path:
    import shutil

    folder = tmp_path / "tok"
    folder.mkdir()
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(tiny_gpt2 / name, folder / name)
    return folder


def test_a_huge_id_in_vocab_json_is_not_allocated(tmp_path: Path, tiny_gpt2: Path) -> None:
    import json

    from fwdtui.errors import WeightsError

    from .helpers import bounded_memory

    vocab = json.loads((tiny_gpt2 / "vocab.json").read_text())
    vocab["zz"] = 5_000_000
    folder = _tokenizer_folder(tmp_path, tiny_gpt2)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    with bounded_memory(20):
        with pytest.raises(WeightsError):
            load_tokenizer(folder)


def _gguf_tokenizer(token_types=None, tokens=None, bos=1, eos=2):
    from fwdtui.tokenizers.bpe import from_gguf_metadata

    from .helpers import GGUF_MERGES, GGUF_TOKENS

    tokens = tokens or GGUF_TOKENS
    types = token_types or [3, 3, 3] + [1] * (len(tokens) - 3)
    return from_gguf_metadata(tokens, GGUF_MERGES, types, "smollm", bos, eos, None, "damaged")


def test_an_empty_special_token_is_dropped() -> None:
    """Checked at its cause: with "" among the special tokens, encode_with_special never returns (and
    holds the interpreter, so it cannot be timed out here); only once it is dropped is encoding run."""
    from .helpers import GGUF_TOKENS

    tok = _gguf_tokenizer(tokens=[""] + GGUF_TOKENS[1:])
    assert "" not in tok.special_tokens
    assert tok.decode(tok.encode_with_special("abc")) == "abc"


def test_a_gguf_vocabulary_of_only_control_tokens() -> None:
    from fwdtui.errors import FwdtuiError

    try:
        tok = _gguf_tokenizer(token_types=[3] * 31)
    except FwdtuiError:
        return  # refusing the vocabulary is fine too
    tok.encode("abc")


@pytest.mark.parametrize("bos, eos", [(10**9, 2), (1, -3), ("a", 2)])
def test_gguf_bos_eos_outside_the_vocabulary(bos, eos) -> None:
    tok = _gguf_tokenizer(bos=bos, eos=eos)
    for token_id in (tok.bos_id, tok.eos_id):
        assert token_id is None or (isinstance(token_id, int) and 0 <= token_id < tok.n_vocab)
