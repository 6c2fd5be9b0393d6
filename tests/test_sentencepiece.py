"""SentencePiece GGUF tokenizers (Llama 2, Mistral): exact ids against llama.cpp and sentencepiece, the GGUF
path end to end, worked examples of the merge order, and damaged files. (The chapters on such a model:
ui/test_spm_chapters.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fwdtui
from fwdtui.errors import WeightsError
from fwdtui.loaders import gguf_loader
from fwdtui.tokenizers import SentencePieceTokenizer, load_gguf_tokenizer
from fwdtui.tokenizers.spm import build_spm_tokenizer, from_gguf_metadata

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "spm_reference.json").read_text(encoding="utf-8"))
VOCAB = FIXTURE["vocab"]
ENCODE_ROWS = FIXTURE["encode"]
# A "▁" typed by the user is a space to SentencePiece: that text cannot come back unchanged.
ROUND_TRIP_ROWS = [r for r in ENCODE_ROWS if "\u2581" not in r["text"]]


def _ids(rows: list[dict]) -> list[str]:
    return [repr(r.get("text", r.get("ids")))[:40] for r in rows]


@pytest.fixture(scope="module")
def tok() -> SentencePieceTokenizer:
    return from_gguf_metadata(VOCAB, "spm-tiny")


# --- exact ids against the references (scripts/make_spm_reference.py) ----------------------------


def test_fixture_has_llama_cpp_and_sentencepiece_answers() -> None:
    """The rows compared below are llama.cpp's own ids, which sentencepiece shares for plain encoding."""
    assert "llama-cpp-python" in FIXTURE["versions"] and len(ENCODE_ROWS) >= 30
    assert all(r["expected"] == r["llama_cpp"] == r["sentencepiece"] for r in ENCODE_ROWS)


@pytest.mark.parametrize("row", ENCODE_ROWS, ids=_ids(ENCODE_ROWS))
def test_encode_matches_llama_cpp(tok: SentencePieceTokenizer, row: dict) -> None:
    assert tok.encode(row["text"]) == row["expected"]


@pytest.mark.parametrize("row", ENCODE_ROWS, ids=_ids(ENCODE_ROWS))
def test_decode_matches_llama_cpp(tok: SentencePieceTokenizer, row: dict) -> None:
    assert tok.decode(row["expected"]) == row["decoded"]


@pytest.mark.parametrize("row", ROUND_TRIP_ROWS, ids=_ids(ROUND_TRIP_ROWS))
def test_round_trip(tok: SentencePieceTokenizer, row: dict) -> None:
    assert tok.decode(tok.encode(row["text"])) == row["text"]


@pytest.mark.parametrize("row", FIXTURE["encode_with_special"], ids=_ids(FIXTURE["encode_with_special"]))
def test_encode_with_special_matches_llama_cpp(tok: SentencePieceTokenizer, row: dict) -> None:
    """llama.cpp parsing specials: each stretch of text after a special gets its own "▁" prefix."""
    assert tok.encode_with_special(row["text"]) == row["llama_cpp"]


@pytest.mark.parametrize("row", FIXTURE["decode"], ids=_ids(FIXTURE["decode"]))
def test_decode_rows_match_llama_cpp(tok: SentencePieceTokenizer, row: dict) -> None:
    assert tok.decode(row["ids"]) == row["llama_cpp"]


def test_typed_special_strings_stay_text(tok: SentencePieceTokenizer) -> None:
    """As with byte-level BPE: "<s>" typed by a user is text, never the BOS id."""
    ids = tok.encode("<s> hi </s> [INST]")
    assert not any(tok.is_special(i) for i in ids)
    assert tok.decode(ids) == "<s> hi </s> [INST]"
    assert tok.encode_with_special("<s> hi </s>")[0] == tok.bos_id == 1


# --- the GGUF path --------------------------------------------------------------------------------

N_EMBD, N_HEAD, N_KV_HEAD, N_INNER, N_LAYER = 32, 4, 2, 64, 2


def write_spm_gguf(path: Path, *, with_model: bool = False) -> None:
    """The fixture's vocabulary as llama.cpp's converter writes it; `with_model` adds a random 2-layer Llama."""
    vocab = VOCAB
    n_vocab = len(vocab["tokens"])
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("spm-tiny")
    w.add_block_count(N_LAYER)
    w.add_context_length(256)
    w.add_embedding_length(N_EMBD)
    w.add_feed_forward_length(N_INNER)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_KV_HEAD)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(N_EMBD // N_HEAD)
    w.add_vocab_size(n_vocab)
    w.add_tokenizer_model("llama")
    w.add_token_list(vocab["tokens"])
    w.add_token_scores(vocab["scores"])
    w.add_token_types(vocab["token_types"])
    w.add_unk_token_id(vocab["unk_id"])
    w.add_bos_token_id(vocab["bos_id"])
    w.add_eos_token_id(vocab["eos_id"])
    w.add_add_bos_token(vocab["add_bos_token"])
    w.add_add_eos_token(vocab["add_eos_token"])
    w.add_add_space_prefix(vocab["add_space_prefix"])
    if with_model:
        rng = np.random.default_rng(0)
        head_dim = N_EMBD // N_HEAD

        def add(name: str, *shape: int) -> None:
            w.add_tensor(name, rng.normal(0, 0.2, size=shape).astype(np.float32))

        add("token_embd.weight", n_vocab, N_EMBD)
        for i in range(N_LAYER):
            add(f"blk.{i}.attn_norm.weight", N_EMBD)
            add(f"blk.{i}.attn_q.weight", N_HEAD * head_dim, N_EMBD)
            add(f"blk.{i}.attn_k.weight", N_KV_HEAD * head_dim, N_EMBD)
            add(f"blk.{i}.attn_v.weight", N_KV_HEAD * head_dim, N_EMBD)
            add(f"blk.{i}.attn_output.weight", N_EMBD, N_HEAD * head_dim)
            add(f"blk.{i}.ffn_norm.weight", N_EMBD)
            add(f"blk.{i}.ffn_gate.weight", N_INNER, N_EMBD)
            add(f"blk.{i}.ffn_up.weight", N_INNER, N_EMBD)
            add(f"blk.{i}.ffn_down.weight", N_EMBD, N_INNER)
        add("output_norm.weight", N_EMBD)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.fixture(scope="module")
def spm_model(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("spm") / "spm-tiny.gguf"
    write_spm_gguf(path, with_model=True)
    return fwdtui.load_model(path)


def test_load_gguf_tokenizer_reads_sentencepiece(tmp_path: Path, tok: SentencePieceTokenizer) -> None:
    path = tmp_path / "tok.gguf"
    write_spm_gguf(path)
    read = load_gguf_tokenizer(path)
    assert isinstance(read, SentencePieceTokenizer) and read.name == "tok"
    assert (read.n_vocab, read.bos_id, read.eos_id, read.unk_id) == (len(VOCAB["tokens"]), 1, 2, 0)
    assert (read.add_bos, read.add_eos, read.add_space_prefix) == (True, False, True)
    for row in ENCODE_ROWS:
        assert read.encode(row["text"]) == row["expected"]
    assert read.scores == tok.scores  # float32 in the file, the same floats after the round trip


def test_load_model_end_to_end(spm_model) -> None:
    """A Llama GGUF with a SentencePiece vocabulary loads, encodes, runs and decodes."""
    tok = spm_model.tokenizer
    assert isinstance(tok, SentencePieceTokenizer)
    assert spm_model.config.vocab_size == tok.n_vocab
    text = "The capital of France is Paris.\n  Indented, café 🙂"
    ids = tok.encode(text)
    assert ids == from_gguf_metadata(VOCAB).encode(text)
    assert tok.decode(ids) == text
    logits = spm_model.logits(ids)
    assert logits.shape == (len(ids), tok.n_vocab) and np.isfinite(logits).all()
    new = list(spm_model.generate(ids, 4, temperature=0.0))
    assert len(new) == 4 and all(0 <= t < tok.n_vocab for t in new)


def test_generate_command_keeps_the_spaces(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`fwdtui generate` prints token by token: each "▁" piece must keep its space (decode() would drop it)."""
    from fwdtui.cli import main

    path = tmp_path / "g.gguf"
    write_spm_gguf(path, with_model=True)
    model = fwdtui.load_model(path)
    from fwdtui.prompt import prepare_prompt

    ids = prepare_prompt(model, "The cat").ids
    assert ids[0] == model.tokenizer.bos_id and ids[1:] == model.tokenizer.encode("The cat")  # add_bos_token
    new = list(model.generate(ids, 12, temperature=1.0, seed=1))
    assert sum(model.tokenizer.pieces[t].startswith("\u2581") for t in new) >= 3  # spaces to lose
    assert main(["generate", "-m", str(path), "-t", "1", "--seed", "1", "-n", "12", "The cat"]) == 0
    text = "The cat" + model.tokenizer.decode_bytes(new).decode("utf-8", errors="replace") + "\n"
    assert capsys.readouterr().out == text


def test_cached_load_keeps_the_scores(tmp_path: Path) -> None:
    """The float32 cache stores the tokenizer data: a second load builds the same tokenizer from it."""
    path = tmp_path / "m.gguf"
    write_spm_gguf(path, with_model=True)
    first = fwdtui.load_model(path).tokenizer
    assert gguf_loader.cache_path(path).is_file()
    second = fwdtui.load_model(path).tokenizer
    assert second.scores == first.scores and second.encode("Hello world") == first.encode("Hello world")


def test_cache_from_before_sentencepiece_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache written when the loader did not keep scores (version 1) must not leave the file unloadable."""
    path = tmp_path / "old.gguf"
    write_spm_gguf(path, with_model=True)
    config, weights, meta = gguf_loader.load_gguf(path)
    del meta["scores"]
    with monkeypatch.context() as m:  # what the loader wrote before it kept SentencePiece scores
        m.setattr(gguf_loader, "CACHE_VERSION", "1")
        gguf_loader.write_cache(path, config, weights, meta)
        assert "scores" not in gguf_loader.read_cache(path)[2]
    assert gguf_loader.read_cache(path) is None  # this version does not trust it
    assert isinstance(fwdtui.load_model(path).tokenizer, SentencePieceTokenizer)
    assert "scores" in gguf_loader.read_cache(path)[2]


def test_gguf_meta_dispatch() -> None:
    meta = {"model": "llama", "name": "x", **{k: VOCAB[k] for k in ("scores", "bos_id", "eos_id", "unk_id")},
            "tokens": VOCAB["tokens"], "token_types": VOCAB["token_types"]}
    assert isinstance(gguf_loader.tokenizer_from_meta(meta), SentencePieceTokenizer)
    with pytest.raises(WeightsError, match="'bert'.*SentencePiece"):
        gguf_loader.tokenizer_from_meta({"model": "bert"})


# --- worked examples of the algorithm -------------------------------------------------------------

BYTES = [f"<0x{b:02X}>" for b in range(256)]


def toy(pieces: dict[str, float], *, byte_tokens: bool = True, **kwargs) -> SentencePieceTokenizer:
    """<unk> <s> </s>, the byte tokens, then `pieces` (piece -> score) as normal pieces."""
    tokens = ["<unk>", "<s>", "</s>"] + (BYTES if byte_tokens else []) + list(pieces)
    scores = [0.0] * (len(tokens) - len(pieces)) + list(pieces.values())
    types = [2, 3, 3] + ([6] * 256 if byte_tokens else []) + [1] * len(pieces)
    return build_spm_tokenizer("toy", tokens, scores, types, bos_id=1, eos_id=2, unk_id=0, **kwargs)


def pieces_of(t: SentencePieceTokenizer, text: str) -> list[str]:
    return [t.pieces[i] for i in t.encode(text)]


def test_highest_score_merges_first() -> None:
    """"abc" is "▁abc": ▁a and ab compete for the a, and the winner decides what is left to pair up.

    ▁a first: ▁a b c, then bc (-7) beats ▁a+b (-8) -> ▁a bc. ab first: ▁ ab c, then ▁+ab -> ▁ab c.
    """
    pieces = {"▁": -1, "a": -2, "b": -3, "c": -4, "▁a": -5, "ab": -6, "bc": -7, "▁ab": -8}
    assert pieces_of(toy(pieces), "abc") == ["▁a", "bc"]
    assert pieces_of(toy({**pieces, "ab": -4.5}), "abc") == ["▁ab", "c"]


def test_ties_merge_leftmost_first() -> None:
    """Five a's with only "aa" and "aaaa": leftmost pairs first give aa aa a, then aaaa a."""
    t = toy({"a": -1, "aa": -2, "aaaa": -3}, add_space_prefix=False)
    assert pieces_of(t, "aaaaa") == ["aaaa", "a"]
    assert pieces_of(t, "aaa") == ["aa", "a"]


def test_byte_fallback_and_unknown() -> None:
    assert pieces_of(toy({"▁": -1}), "é") == ["▁", "<0xC3>", "<0xA9>"]
    no_bytes = toy({"▁": -1, "x": -2}, byte_tokens=False)
    assert pieces_of(no_bytes, "xéx") == ["▁", "x", "<unk>", "x"]  # one <unk> for the whole character
    assert "byte tokens" in no_bytes.warning and toy({"▁": -1}).warning is None


def test_space_prefix_and_spaces() -> None:
    t = toy({"▁": -1, "h": -2, "i": -3, "▁h": -4, "▁hi": -5, "▁▁": -6})
    assert t.normalize("hi  hi") == "▁hi▁▁hi"
    assert pieces_of(t, "hi") == ["▁hi"] and pieces_of(t, " hi") == ["▁", "▁hi"]
    assert t.pre_tokenize("hi  hi ") == ["▁hi", "▁▁hi", "▁"]  # what merges never cross
    assert t.encode("") == [] and t.pre_tokenize("") == []
    assert pieces_of(toy({"▁": -1, "h": -2, "i": -3}, add_space_prefix=False), "hi") == ["h", "i"]


def test_decode_drops_only_the_prefix_space() -> None:
    t = toy({"▁": -1, "h": -2, "i": -3, "▁h": -4, "▁hi": -5})
    hi = t.encode("hi")
    assert t.decode(hi + hi) == "hi hi"
    assert t.decode_bytes(hi + hi) == b" hi hi"  # token by token, each keeps its space
    assert t.decode([1] + hi) == "<s> hi"  # like llama.cpp showing specials: only a first token loses it
    assert t.decode(t.encode(" hi")) == " hi"
    # half an emoji: one U+FFFD for the cut sequence, as Python (and our BPE) decode; sentencepiece writes two
    assert t.decode([t.pieces.index("<0xF0>"), t.pieces.index("<0x9F>")]) == "\ufffd"


def test_token_bytes_by_type() -> None:
    tokens = ["<unk>", "<s>", "</s>", "<0x0A>", "▁the", "<tool>", "<unused0>"]
    t = build_spm_tokenizer("x", tokens, [0.0] * 7, [2, 3, 3, 6, 1, 4, 5], bos_id=1, eos_id=2, unk_id=0)
    assert [t.token_bytes(i) for i in range(7)] == [b"<unk>", b"<s>", b"</s>", b"\n", b" the", b"<tool>", b""]
    assert [t.is_special(i) for i in range(7)] == [True, True, True, False, False, True, False]
    assert t.special_tokens == {"<unk>": 0, "<s>": 1, "</s>": 2, "<tool>": 5}
    assert t.token_str(4) == " the" and t.n_vocab == 7
    with pytest.raises(ValueError, match="outside"):
        t.token_bytes(7)


def test_specials_are_never_merged_into() -> None:
    """Even when pieces spell a control token out, plain text does not become it."""
    t = toy({"▁": -0.5, "<": -1, "s": -2, ">": -3, "<s": -4})
    assert pieces_of(t, "<s>") == ["▁", "<s", ">"]  # "<s" + ">" would be "<s>", the BOS token: not a merge
    assert t.encode_with_special("<s>") == [t.bos_id]


def test_gguf_defaults_and_damaged_values() -> None:
    """Keys a file lacks take llama.cpp's SentencePiece defaults; impossible ids become None."""
    meta = {"tokens": VOCAB["tokens"], "scores": VOCAB["scores"], "token_types": VOCAB["token_types"]}
    t = from_gguf_metadata(meta, "old")
    assert (t.unk_id, t.bos_id, t.eos_id, t.add_bos, t.add_eos, t.add_space_prefix) == (0, 1, 2, True, False, True)
    t = from_gguf_metadata({**meta, "bos_id": 10**9, "eos_id": -1, "add_space_prefix": False}, "bad")
    assert (t.bos_id, t.eos_id, t.add_bos, t.add_space_prefix) == (None, None, False, False)
    untyped = from_gguf_metadata({**meta, "token_types": None}, "untyped")  # every piece normal, as llama.cpp reads it
    assert untyped.token_bytes(VOCAB["tokens"].index("<0x00>")) == b"<0x00>"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tokens": []}, "no SentencePiece vocabulary"),
        ({"scores": None}, "no SentencePiece scores"),
        ({"scores": [0.0, 1.0]}, "has 2 SentencePiece scores"),
        ({"token_types": [1, 1]}, "2 token types"),
        ({"token_types": ["x"] * len(VOCAB["tokens"])}, "not numbers"),
    ],
)
def test_damaged_vocabularies_are_refused(change: dict, message: str) -> None:
    with pytest.raises(WeightsError, match=message):
        from_gguf_metadata({**VOCAB, **change}, "damaged")


def test_nan_scores_merge_last() -> None:
    """A damaged score (NaN) must not scramble the heap: that pair simply comes after every other."""
    t = toy({"▁": -1, "a": -2, "▁a": float("nan"), "aa": -3})
    assert pieces_of(t, "aaa") == ["▁", "aa", "a"]  # ▁a first would give ▁a aa


def test_words_merge_alone_only_when_no_piece_spans_a_word_start(tok: SentencePieceTokenizer) -> None:
    """Merging word by word is a shortcut: it must give what one merge over the whole text gives."""
    for row in ENCODE_ROWS:
        if row["text"]:
            assert tok.merge_run(tok.normalize(row["text"])) == tok.encode(row["text"])
    # "a▁" and "a▁b" cross a word start: the whole text is merged at once, so they can form
    t = toy({"▁": -1, "a": -2, "b": -3, "a▁": -4, "a▁b": -5})
    assert pieces_of(t, "a b") == ["▁", "a▁b"]


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\u2581"), max_size=60))
def test_any_text_round_trips_and_merges_word_by_word(tok: SentencePieceTokenizer, text: str) -> None:
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert ids == (tok.merge_run(tok.normalize(text)) if text else [])


def test_long_text(tok: SentencePieceTokenizer) -> None:
    """100,000 characters in one call (about 0.1 s; a quadratic rescan would take minutes) round-trip."""
    text = "The quick brown fox, café 🙂 1234\n" * 3000
    ids = tok.encode(text)
    assert tok.decode(ids) == text


def test_fragments_keep_their_spaces_and_single_words_are_found(spm_model) -> None:
    """decode() is for whole texts (it drops the prefix space); a token or a continuation keeps its space."""
    from fwdtui.core.embedding_lab import single_token
    from fwdtui.tokenizers import fragment_text

    tok = spm_model.tokenizer
    ids = tok.encode("Hello world")
    assert tok.decode(ids) == "Hello world"
    assert fragment_text(tok, ids) == " Hello world"  # the first piece is "▁Hello"
    assert fragment_text(tok, ids[1:]) == tok.decode_bytes(ids[1:]).decode() and fragment_text(tok, ids[1:])[0] == " "
    word = next(p[1:] for p in tok.pieces if p.startswith("\u2581") and len(p) > 3 and p[1:].isalpha())
    assert single_token(spm_model, word) == tok.pieces.index("\u2581" + word)


def test_byte_spans_are_in_the_text_not_the_prefixed_text(spm_model, capsys) -> None:
    """The "▁" SentencePiece adds in front is not in the text: spans and the comparison chapter's cuts say so."""
    import json as json_module

    from fwdtui.cli import main
    from fwdtui.tokenizers import text_pieces
    from fwdtui.tokenizers.compare import tokenize

    tok, text = spm_model.tokenizer, "Hello world, café"
    ids = tok.encode(text)
    assert b"".join(tok.token_bytes(i) for i in ids) == b" " + text.encode()
    assert b"".join(text_pieces(tok, ids)) == text.encode()
    assert tokenize(tok, text).exact
    assert main(["tokenize", "--json", "-m", spm_model.info.path, text]) == 0
    rows = json_module.loads(capsys.readouterr().out)["tokens"]
    assert rows[0]["start"] == 0 and rows[-1]["end"] == len(text.encode())
    spans = [text.encode()[r["start"]:r["end"]] for r in rows]
    assert spans[0] == bytes(rows[0]["bytes"])[1:]  # "▁Hello" covers "Hello"
    assert spans[1:] == [bytes(r["bytes"]) for r in rows[1:]]
