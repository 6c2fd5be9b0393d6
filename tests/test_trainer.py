"""Tests of our BPE trainer: worked examples, fast == naive, round trips, files, tiktoken."""

from __future__ import annotations

import doctest
import json
import os
from functools import lru_cache
from pathlib import Path

import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

from fwdtui.errors import ConfigError, FwdtuiError, WeightsError
from fwdtui.tokenizers import trainer as trainer_module
from fwdtui.tokenizers.corpus import benchmark_text, sample_text
from fwdtui.tokenizers.trainer import (
    ENDOFTEXT,
    GPT2_SPLIT_PATTERN,
    GPT4_SPLIT_PATTERN,
    BPETrainer,
    TrainedTokenizer,
    count_chunks,
    get_stats,
    merge,
    split_text,
    train,
    train_naive,
)

# strings that have tripped tokenizers up: empty, spaces, newlines, contractions, digits,
# accents (composed and combining), CJK, RTL, emoji with joiners and skin tones, odd controls
AWKWARD = [
    "",
    "a",
    " ",
    "   leading and trailing   ",
    "\n\n\n",
    "\r\n\tmixed\r\nline ends\r",
    "it's we'LL they've I'M don't",
    "1234567890 3.14159 1,000,000 -42",
    "naïve café, re\u0301sume\u0301",
    "日本語のテキストと漢字",
    "مرحبا بالعالم",
    "👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 🇫🇷",
    "def f(x):\n    return x ** 2  # square\n",
    "\x00\x01\x7f zero bytes",
    "<|endoftext|> typed by a user",
    "ǅ ß ẞ ﬁ ℌ Ω",
]


@lru_cache(maxsize=None)
def trained_on_sample(vocab_size: int = 600, pattern: str = GPT4_SPLIT_PATTERN) -> TrainedTokenizer:
    """One tokenizer per setting, shared by the tests (hypothesis reuses it across examples)."""
    return train(sample_text(), vocab_size, pattern=pattern, special_tokens=[ENDOFTEXT])


# --------------------------------------------------------------------------- worked examples


def test_module_doctests() -> None:
    """The 'aaabdaaabac' example in the module docstring runs as written."""
    result = doctest.testmod(trainer_module)
    assert result.attempted >= 4 and result.failed == 0


def test_classic_example_merges_and_encoding() -> None:
    """aa -> Z, ab -> Y, ZY -> X: "aaabdaaabac" becomes "XdXac" (Wikipedia's example)."""
    tok = train("aaabdaaabac", vocab_size=259)
    assert tok.merges == {(97, 97): 256, (97, 98): 257, (256, 257): 258}
    assert [s.count for s in tok.history] == [4, 2, 2]
    assert tok.encode("aaabdaaabac") == [258, ord("d"), 258, ord("a"), ord("c")]
    assert tok.vocab[258] == b"aaab"


def test_helpers_count_overlaps_and_merge_left_to_right() -> None:
    """get_stats counts both (a, a) in "aaa"; merge makes [aa, a], never [a, aa]."""
    assert get_stats([[1, 1, 1]]) == {(1, 1): 2}
    assert get_stats([[1, 2], [2, 1, 2]], [3, 5]) == {(1, 2): 8, (2, 1): 5}
    assert merge([1, 1, 1], (1, 1), 9) == [9, 1]
    assert merge([1, 1, 1, 1], (1, 1), 9) == [9, 9]
    assert merge([1, 2, 3, 1, 2], (1, 2), 7) == [7, 3, 7]


def test_ties_go_to_the_lowest_pair() -> None:
    """"ab" and "cd" both occur twice: (97, 98) wins over (99, 100), whatever the text order."""
    for text in ["cd ab cd ab", "ab cd ab cd"]:
        tok = train(text, vocab_size=257, pattern=r"\S+|\s+")
        assert tok.history[0].pair == (97, 98)


def test_split_patterns_on_known_strings() -> None:
    """GPT-2 keeps digit runs whole; GPT-4 cuts them in threes and lets words take punctuation."""
    text = "Hello world's 1234567!!\n\n  x"
    assert split_text(text, GPT2_SPLIT_PATTERN) == [
        "Hello", " world", "'s", " 1234567", "!!", "\n\n ", " x"]
    assert split_text(text, GPT4_SPLIT_PATTERN) == [
        "Hello", " world", "'s", " ", "123", "456", "7", "!!\n\n", " ", " x"]
    assert split_text("I'LL", GPT2_SPLIT_PATTERN) == ["I", "'", "LL"]
    assert split_text("I'LL", GPT4_SPLIT_PATTERN) == ["I", "'LL"]


def test_gpt2_pattern_splits_like_tiktoken_and_is_the_gpt2_modules() -> None:
    """Our GPT-2 pattern cuts text exactly as tiktoken's r50k pattern; trainer and loader share it."""
    import regex

    from tiktoken_ext.openai_public import r50k_pat_str

    from fwdtui.tokenizers.gpt2 import GPT2_PATTERN

    assert GPT2_SPLIT_PATTERN is GPT2_PATTERN
    for text in [*AWKWARD, sample_text()]:
        assert split_text(text, GPT2_SPLIT_PATTERN) == regex.findall(r50k_pat_str, text)


def test_count_chunks_is_a_unique_table_without_special_strings() -> None:
    """Training sees each chunk once with its count, and never the special-token text."""
    counts = count_chunks("the cat<|endoftext|>the cat the", special_tokens=[ENDOFTEXT])
    assert counts == {b"the": 2, b" cat": 2, b" the": 1}
    tok = train("<|endoftext|>" * 50, vocab_size=300, special_tokens=[ENDOFTEXT])
    assert tok.merges == {}  # nothing but special text: nothing to learn
    assert tok.special_tokens == {ENDOFTEXT: 256}


# --------------------------------------------------------------------------- fast == naive

TRAINING_TEXTS = {
    "sample": sample_text(),
    "runs": "aaaa aaa aaaaa abababab bbbb aaabaaab " * 7 + "aaaaaaaaaaaaaaaaa",
    "emoji": "👍👍🏽 👨‍👩‍👧‍👦👨‍👩‍👧 🇫🇷🇫🇷🇩🇪 " * 5 + "日本語日本 日本語のテキスト" * 3,
    "code": "    def f(self):\n        return self.x\n" * 9 + "\t\tif x == 1:\n\t\t\tpass\n" * 4,
    "bench-slice": benchmark_text(30_000, seed=3),
}


@pytest.mark.parametrize("name", list(TRAINING_TEXTS))
@pytest.mark.parametrize("pattern", [GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN], ids=["gpt2", "gpt4"])
def test_fast_trainer_learns_the_naive_merges(name: str, pattern: str) -> None:
    """Same merges, same order, same counts as a full recount after every merge."""
    text = TRAINING_TEXTS[name]
    n = 256 + (250 if name in ("sample", "bench-slice") else 120)
    fast = train(text, n, pattern=pattern)
    naive = train_naive(text, n, pattern=pattern)
    assert fast.history == naive.history
    assert len(fast.history) > 0


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="aab \n1é😀", max_size=80))
def test_fast_equals_naive_on_small_alphabets(text: str) -> None:
    """Texts full of repeats and overlaps, where incremental counting is easiest to get wrong."""
    assert train(text, 300, pattern=r"\S+|\s+").history == train_naive(
        text, 300, pattern=r"\S+|\s+").history


def test_incremental_counts_match_a_recount_after_every_merge() -> None:
    """The trainer's pair counts are exactly a fresh recount, merge after merge."""
    trainer = BPETrainer.from_text(TRAINING_TEXTS["runs"] + TRAINING_TEXTS["emoji"])
    for step in trainer.steps():
        assert trainer.pair_counts == get_stats(trainer.words, trainer.freqs), step
        for pair in trainer.pair_counts:  # the index may be stale but never misses a chunk
            holders = {w for w, word in enumerate(trainer.words) if pair in zip(word, word[1:])}
            assert holders <= trainer.where[pair]
    assert trainer.pair_counts == {}  # ran until every chunk was a single token


def test_steps_is_a_resumable_generator() -> None:
    """steps() yields MergeSteps one at a time; the UI can stop and go on later."""
    trainer = BPETrainer.from_text(sample_text())
    first = [s for _, s in zip(range(5), trainer.steps())]
    more = [s for _, s in zip(range(5), trainer.steps())]
    assert [s.rank for s in first + more] == list(range(10))
    assert [s.new_id for s in first + more] == list(range(256, 266))
    assert all(trainer.vocab[s.pair[0]] + trainer.vocab[s.pair[1]] == s.token for s in more)
    counts = [s.count for s in first + more]
    assert counts == sorted(counts, reverse=True)  # BPE counts never rise on this text


def test_progress_and_should_stop() -> None:
    """progress sees every merge; should_stop ends training with what was learned so far."""
    seen: list[tuple[int, int]] = []
    tok = train(sample_text(), 266, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(k, 10) for k in range(1, 11)]
    asked = []

    def stop_after_three() -> bool:
        asked.append(1)
        return len(asked) > 3

    partial = train(sample_text(), 400, should_stop=stop_after_three,
                    special_tokens=[ENDOFTEXT])
    assert list(partial.merges) == list(tok.merges)[:3]
    assert partial.special_tokens == {ENDOFTEXT: 259}  # right after the last merge learned


def test_vocab_size_below_bytes_is_a_config_error() -> None:
    """A vocabulary smaller than the 256 bytes cannot write every text: say so."""
    with pytest.raises(ConfigError, match="256"):
        train("hello", 100)


# --------------------------------------------------------------------------- encode / decode


@pytest.mark.parametrize("text", AWKWARD)
def test_round_trip_awkward_strings(text: str) -> None:
    """decode(encode(text)) == text, and the first EncodeStep is the text's raw bytes."""
    tok = trained_on_sample()
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert all(0 <= i < tok.n_vocab for i in ids)
    steps = list(tok.encode_steps(text))
    assert steps[0].ids == list(text.encode("utf-8"))
    assert steps[-1].ids == ids


@settings(max_examples=150, deadline=None)
@given(st.text())
def test_round_trip_any_text(text: str) -> None:
    """Any Unicode text survives encode then decode, with either split pattern."""
    for pattern in (GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN):
        tok = trained_on_sample(600, pattern)
        assert tok.decode(tok.encode(text)) == text


def test_encoding_shortens_text_it_was_trained_on() -> None:
    """The learned merges pay off: the sample takes far fewer tokens than bytes."""
    tok = trained_on_sample()
    text = sample_text()
    assert len(tok.encode(text)) < 0.5 * len(text.encode("utf-8"))


def test_encode_steps_apply_ranks_in_order() -> None:
    """Each step applies a later rank than the one before, and counts what it replaced."""
    tok = trained_on_sample()
    text = "The model reads tokens, not letters. 👍"
    steps = list(tok.encode_steps(text))
    ranks = [s.rank for s in steps[1:]]
    assert ranks == sorted(ranks) and len(set(ranks)) == len(ranks)
    for before, after in zip(steps, steps[1:]):
        assert len(before.ids) - len(after.ids) == after.n_merged > 0
        assert tok.merges[after.pair] == after.new_id
    assert steps[-1].ids == tok.encode(text)
    # chunk borders hold: every chunk decodes to one regex chunk of the text
    assert [tok.decode(c) for c in steps[-1].chunks] == split_text(text, tok.pattern)


def test_special_tokens_only_through_encode_with_special() -> None:
    """User text cannot forge <|endoftext|>; chat templates can place it."""
    tok = trained_on_sample()
    eot = tok.special_tokens[ENDOFTEXT]
    assert eot == 256 + len(tok.merges) and tok.eos_id == eot and tok.n_vocab == eot + 1
    text = "hi<|endoftext|>there"
    plain = tok.encode(text)
    assert eot not in plain and tok.decode(plain) == text
    special = tok.encode_with_special(text)
    assert special == tok.encode("hi") + [eot] + tok.encode("there")
    assert tok.decode(special) == text
    assert tok.token_bytes(eot) == ENDOFTEXT.encode()
    with pytest.raises(FwdtuiError):
        tok.decode([tok.n_vocab])


def test_lone_surrogates_become_replacement_characters() -> None:
    """Text from a broken file (a lone surrogate) encodes like tiktoken: as U+FFFD, no crash."""
    tok = trained_on_sample()
    assert tok.decode(tok.encode("ok \ud800 ok")) == "ok \ufffd ok"
    assert count_chunks("\ud800\udfff")  # training on it does not crash either


def test_longer_special_token_wins_over_its_prefix() -> None:
    """With specials <|a|> and <|a|>x, the text <|a|>x is the longer one."""
    tok = train("plain text here", 260, special_tokens=["<|a|>", "<|a|>x"])
    a, ax = tok.special_tokens["<|a|>"], tok.special_tokens["<|a|>x"]
    assert tok.encode_with_special("<|a|>x<|a|>") == [ax, a]


# --------------------------------------------------------------------------- files


def test_save_load_round_trip(tmp_path: Path) -> None:
    """A saved tokenizer loads back with the same merges, history, specials and encodings."""
    tok = train(sample_text(), 400, pattern=GPT2_SPLIT_PATTERN, special_tokens=[ENDOFTEXT])
    path = tmp_path / "tok.json"
    tok.save(path)
    back = TrainedTokenizer.load(path)
    assert back.merges == tok.merges and list(back.merges) == list(tok.merges)
    assert back.history == tok.history
    assert back.special_tokens == tok.special_tokens and back.pattern == GPT2_SPLIT_PATTERN
    for text in [*AWKWARD, sample_text()]:
        assert back.encode_with_special(text) == tok.encode_with_special(text)
    assert json.loads(path.read_text(encoding="utf-8"))["format"] == "fwdtui-bpe"


def _corrupt(data: dict, how: str) -> str:
    if how == "not json":
        return "{merges: oops"
    if how == "truncated":
        return json.dumps(data)[:200]
    if how == "other json":
        return json.dumps({"model": {"type": "BPE"}})
    if how == "future version":
        return json.dumps({**data, "version": 99})
    if how == "unknown id":
        return json.dumps({**data, "merges": [[1, 2, 256], [999, 3, 257]]})
    if how == "reused id":
        return json.dumps({**data, "merges": [[1, 2, 256], [3, 4, 256]]})
    if how == "merge is not a triple":
        return json.dumps({**data, "merges": [[1, 2]]})
    if how == "bad pattern":
        return json.dumps({**data, "pattern": "(unclosed"})
    if how == "bad byte ids":
        return json.dumps({**data, "byte_ids": [0] * 256})
    if how == "counts mismatch":
        return json.dumps({**data, "counts": [1]})
    raise AssertionError(how)


@pytest.mark.parametrize("how", [
    "not json", "truncated", "other json", "future version", "unknown id", "reused id",
    "merge is not a triple", "bad pattern", "bad byte ids", "counts mismatch",
])
def test_corrupt_file_is_a_weights_error(tmp_path: Path, how: str) -> None:
    """Every kind of damaged file raises WeightsError with a fix, never a bare traceback."""
    tok = train(sample_text(), 300)
    good = tmp_path / "good.json"
    tok.save(good)
    bad = tmp_path / "bad.json"
    bad.write_text(_corrupt(json.loads(good.read_text(encoding="utf-8")), how), encoding="utf-8")
    with pytest.raises(WeightsError) as info:
        TrainedTokenizer.load(bad)
    assert info.value.fix and "save" in info.value.fix


def test_missing_file_is_a_weights_error(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="no tokenizer file"):
        TrainedTokenizer.load(tmp_path / "nope.json")


# --------------------------------------------------------------------------- tiktoken


def _tiktoken_strings() -> list[str]:
    """Many strings: the awkward ones, every line of the sample, slices of the bench text."""
    bench = benchmark_text(20_000, seed=7)
    return [*AWKWARD, *sample_text().splitlines(), sample_text(),
            *(bench[k : k + 300] for k in range(0, 20_000, 300))]


@pytest.mark.parametrize("pattern", [GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN], ids=["gpt2", "gpt4"])
def test_same_ids_as_tiktoken_given_our_merges(pattern: str) -> None:
    """tiktoken built from our vocabulary (bytes -> id as rank) encodes exactly as we do."""
    tok = train(sample_text() + benchmark_text(40_000, seed=1), 1024, pattern=pattern,
                special_tokens=[ENDOFTEXT])
    ranks = tok.mergeable_ranks()
    assert len(ranks) == len(tok.vocab)  # no two tokens share bytes
    enc = tiktoken.Encoding("fwdtui-trained", pat_str=pattern, mergeable_ranks=ranks,
                            special_tokens=tok.special_tokens)
    for text in _tiktoken_strings():
        assert tok.encode(text) == enc.encode_ordinary(text), text
        assert tok.encode_with_special(text) == enc.encode(text, allowed_special="all"), text
    # and back: the merges recovered from tiktoken's table are ours, in our order
    again = TrainedTokenizer.from_mergeable_ranks(ranks, pattern)
    assert list(again.merges.items()) == list(tok.merges.items())


def _gpt2_dir() -> Path | None:
    """Where GPT-2's encoder.json + vocab.bpe live, if anywhere."""
    candidates = [os.environ.get("FWDTUI_GPT2_TOKENIZER_DIR"),
                  Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "gpt2"]
    for folder in candidates:
        if folder and (Path(folder) / "encoder.json").is_file() and (
                Path(folder) / "vocab.bpe").is_file():
            return Path(folder)
    return None


@pytest.mark.skipif(_gpt2_dir() is None, reason="GPT-2 encoder.json/vocab.bpe not found")
def test_gpt2_merges_in_our_encoder_match_tiktoken() -> None:
    """GPT-2's own 50,000 merges, run by our encoder, give tiktoken's ids on every string."""
    try:  # the GPT-2 file readers belong to fwdtui.tokenizers.gpt2 (another module's work)
        from fwdtui.tokenizers.gpt2 import read_merges_txt, read_vocab_json, token_str_to_bytes
    except ImportError as err:
        pytest.skip(f"fwdtui.tokenizers.gpt2 readers not available: {err}")
    folder = _gpt2_dir()
    assert folder is not None
    encoder = read_vocab_json(folder / "encoder.json")  # token string -> id
    specials = {ENDOFTEXT: encoder[ENDOFTEXT]}
    ranks = {token_str_to_bytes(s): i for s, i in encoder.items() if s != ENDOFTEXT}
    merges = {(encoder[a], encoder[b]): encoder[a + b]
              for a, b in read_merges_txt(folder / "vocab.bpe")}
    byte_ids = tuple(ranks[bytes([b])] for b in range(256))  # GPT-2 permutes the byte ids
    ours = TrainedTokenizer(merges=merges, pattern=GPT2_SPLIT_PATTERN, special_tokens=specials,
                            name="gpt2", byte_ids=byte_ids)
    assert ours.n_vocab == 50257 and len(ours.merges) == 50000
    enc = tiktoken.Encoding("gpt2-from-files", pat_str=GPT2_SPLIT_PATTERN,
                            mergeable_ranks=ranks, special_tokens=specials)
    for text in _tiktoken_strings():
        assert ours.encode(text) == enc.encode_ordinary(text), text
        assert ours.encode_with_special(text) == enc.encode(text, allowed_special="all")
    assert ours.encode(" the") == [262]  # the first rows of vocab.bpe are "Ġ t", then "Ġt he"
    assert ours.encode("Hello world") == [15496, 995]


def test_corrupt_from_mergeable_ranks_is_rejected() -> None:
    """A table missing a single byte cannot write every text."""
    ranks = {bytes([b]): b for b in range(255)}
    with pytest.raises(ValueError, match="single byte"):
        TrainedTokenizer.from_mergeable_ranks(ranks)


def test_tokenizer_contract_attributes() -> None:
    """The attributes every fwdtui tokenizer has (architecture.md)."""
    tok = trained_on_sample()
    assert tok.name and tok.chat_template is None
    assert tok.bos_id == tok.eos_id == tok.special_tokens[ENDOFTEXT]
    assert tok.token_bytes(ord("A")) == b"A"
    assert tok.n_vocab == 600 + 1  # 256 bytes + 344 merges + <|endoftext|>
    assert isinstance(tok.encode("x"), list)
