"""Make the SentencePiece tokenizer fixture: a tiny Llama-2-style vocabulary and the ids references give for it.

Run by hand (the tests never do). Besides gguf it needs packages outside the project's dependencies,
kept out of the project's environment:

    pip install --target /tmp/spmref/sp sentencepiece
    # optional, compiles llama.cpp (about 30 minutes on 2 cores):
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF \
        -DLLAMA_BUILD_SERVER=OFF" pip install --no-deps --target /tmp/spmref/llcpp llama-cpp-python diskcache
    PYTHONPATH=/tmp/spmref/sp:/tmp/spmref/llcpp python scripts/make_spm_reference.py

What it does:
1. trains a SentencePiece BPE model with Llama 2's trainer settings (byte fallback, digits split,
   whitespace-only pieces, identity normalization, a dummy prefix) on the text below;
2. writes its pieces, scores and types as a GGUF tokenizer (`tokenizer.ggml.model` = "llama"), the
   way llama.cpp's converter does;
3. encodes awkward texts with sentencepiece itself, llama.cpp (through llama-cpp-python, when
   installed) and transformers' GGUF reader, and decodes ids back;
4. writes tests/fixtures/spm_reference.json. `expected` is llama.cpp's answer, since llama.cpp
   defines how a GGUF tokenizes; the others are kept beside it and every row where one differs is
   listed under "disagreements".
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import sys
import tempfile
from pathlib import Path

import gguf

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "spm_reference.json"
VOCAB_SIZE = 640
CONTROL = ["[INST]", "[/INST]"]  # like Mistral v0.3's control tokens: text only encode_with_special turns into ids

# The training text: a little of everything the test strings lean on (English prose, accents, CJK,
# code indentation, digits), so that the vocabulary has multi-character pieces, runs of "▁" and a
# few non-ASCII pieces, while rarer characters (emoji, most CJK) are left to the byte fallback.
CORPUS = """\
The tokenizer reads the text one character at a time and merges the pairs it knows.
A token is a piece of text: a whole word, part of a word, a space, or a single byte.
The model never sees letters; it sees the numbers of the tokens, one after the other.
When the tokenizer meets a character it has never seen, it writes the character as bytes.
Every word that starts after a space keeps that space in front of it, written as a small bar.
The first word of a text gets a space in front as well, so it looks like every other word.
There are three special tokens: the unknown token, the start of the text and the end of the text.
Numbers are split into single digits: 1, 2, 3, 10, 42, 100, 2024, 3.14, 1,000,000.
She said that the weather would be better tomorrow, and the day after that.
They were reading the book together in the garden while the children played.
He thinks that the answer is simple; the question is the hard part.
We went to the market, bought bread and cheese, and walked home along the river.
What is the capital of France? The capital of France is Paris.
What is the capital of Germany? The capital of Germany is Berlin.
Hello world! Hello again, world. Hello, hello, hello.
The quick brown fox jumps over the lazy dog. The lazy dog sleeps in the sun.
Le café est très bon, et la crème brûlée aussi. C'est une journée très agréable.
Über den Wolken muss die Freiheit wohl grenzenlos sein. Schöne Grüße aus München.
El niño comió la piña en la mañana. ¿Dónde está la estación? ¡Qué día!
La façade de l'hôtel était naïve et élégante; où est le théâtre ?
中文 是 一种 语言。 我 喜欢 学习 中文。 中文 很 有 意思。
日本語 の テキスト です。 これ は 日本語 です。
def tokenize(text):
    tokens = []
    for word in text.split():
        tokens.append(word)
    return tokens

class Tokenizer:
    def __init__(self, vocab):
        self.vocab = vocab

    def encode(self, text):
        return [self.vocab[t] for t in text]

if x > 0:
        return x
    else:
        return -x
Tabs\tand\tspaces  are   both    whitespace.
Two  spaces,  three   spaces,   four    spaces.
"""

# Strings that trip tokenizers, for `encode` (special-token strings stay text there).
TEXTS = [
    "Hello world",
    "The capital of France is",
    "",
    " ",
    "  ",
    "   leading spaces",
    "trailing spaces   ",
    "multiple    spaces    inside",
    " Hello",
    "\n",
    "line one\nline two\n",
    "\n\n\nthree newlines",
    "tab\tseparated\tvalues",
    "\t\tindented with tabs",
    "def f(x):\n    return x + 1\n",
    "emoji 🙂 and 👍🏽 thumbs",
    "中文 测试 字符",
    "日本語のテキスト",
    "café crème brûlée",
    "naïve façade hôtel",
    "cafe\u0301 with a combining accent",
    "1234567890",
    "3.14159 and 2,000,000",
    "bytes \x00\x01\x7f in text",
    "€100 or £50 or ¥1000",
    "Ω≈ç√∫ and ﬁ ligature",
    "a",
    "aaaaaaaaaa",
    "The the THE tHe",
    "don't won't it's",
    "\u2581 a literal bar",
    "<s> typed by a user </s>",
    "[INST] typed [/INST]",
    "zero\u200bwidth space",
    "\r\nwindows line\r\n",
    "antidisestablishmentarianism",
]

# Strings for `encode_with_special`, where control-token text becomes the token.
SPECIAL_TEXTS = [
    "[INST] What is the capital of France? [/INST]",
    "<s>[INST] Hello [/INST] Hi</s>",
    "[INST][/INST]",
    "before<s>after",
    "<unk>",
]

def train_vocab() -> tuple[list[tuple[str, float, int]], object]:
    """(piece, score, GGUF token type) for every id of a freshly trained SentencePiece BPE model, and the model."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS.splitlines()),
        model_writer=model,
        model_type="bpe",
        vocab_size=VOCAB_SIZE,
        character_coverage=0.995,  # the rarest characters get no piece: they take the byte fallback
        byte_fallback=True,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        add_dummy_prefix=True,
        control_symbols=CONTROL,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        num_threads=1,
        minloglevel=2,
    )
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    vocab = []
    for i in range(sp.get_piece_size()):
        kind = 2 if sp.is_unknown(i) else 3 if sp.is_control(i) else 5 if sp.is_unused(i) else 6 if sp.is_byte(i) else 1
        vocab.append((sp.id_to_piece(i), float(sp.get_score(i)), kind))
    return vocab, sp


def write_gguf(path: Path, vocab: list[tuple[str, float, int]]) -> None:
    """A GGUF with this tokenizer and a Llama header (no tensors: the references only read the tokenizer)."""
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("spm-tiny")
    w.add_block_count(1)
    w.add_context_length(128)
    w.add_embedding_length(16)
    w.add_feed_forward_length(32)
    w.add_head_count(2)
    w.add_head_count_kv(2)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(len(vocab))
    w.add_tokenizer_model("llama")
    w.add_token_list([p for p, _, _ in vocab])
    w.add_token_scores([s for _, s, _ in vocab])
    w.add_token_types([t for _, _, t in vocab])
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(True)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


class LlamaCpp:
    """llama.cpp's own tokenizer on the GGUF, through llama-cpp-python's low-level API."""

    def __init__(self, path: Path) -> None:
        import llama_cpp

        self._quiet = llama_cpp.llama_log_callback(lambda *args: None)  # kept: llama.cpp calls it later
        llama_cpp.llama_log_set(self._quiet, None)
        self.lib = llama_cpp
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        self.model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
        if not self.model:
            raise RuntimeError("llama.cpp could not load the GGUF")
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)

    def encode(self, text: str, parse_special: bool) -> list[int]:
        data = text.encode("utf-8")
        buf = (self.lib.llama_token * (len(data) + 8))()
        n = self.lib.llama_tokenize(self.vocab, data, len(data), buf, len(buf), False, parse_special)
        return list(buf[:n])

    def decode(self, ids: list[int]) -> str:
        """remove_special off, unparse_special on: control tokens written as their text, as ours are."""
        arr = (self.lib.llama_token * max(len(ids), 1))(*ids)
        size = 64 + 16 * len(ids)
        while True:
            text = (self.lib.ctypes.c_char * size)()
            n = self.lib.llama_detokenize(self.vocab, arr, len(ids), text, size, False, True)
            if n >= 0:
                return bytes(text[:n]).decode("utf-8", errors="replace")
            size = -n  # too small: llama.cpp says how much it needs


def transformers_tokenizer(path: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


def main() -> int:
    vocab, sp = train_vocab()
    print(f"trained {len(vocab)} pieces; {sum(t == 6 for *_, t in vocab)} byte pieces")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spm-tiny.gguf"
        write_gguf(path, vocab)
        try:
            llama = LlamaCpp(path)
        except ImportError:
            llama = None
            print("llama-cpp-python is not installed: `expected` falls back to sentencepiece", file=sys.stderr)
        hf = transformers_tokenizer(path)

        def references(text: str) -> dict:
            row = {"text": text, "sentencepiece": sp.encode(text),
                   "transformers": hf.encode(text, add_special_tokens=False)}
            if llama is not None:
                row["llama_cpp"] = llama.encode(text, parse_special=False)
            row["expected"] = row.get("llama_cpp", row["sentencepiece"])
            row["decoded"] = llama.decode(row["expected"]) if llama is not None else sp.decode(row["expected"])
            row["decoded_sentencepiece"] = sp.decode(row["expected"])
            row["decoded_transformers"] = hf.decode(row["expected"])
            return row

        rows = [references(t) for t in TEXTS]
        special_rows = []
        for text in SPECIAL_TEXTS:
            row = {"text": text, "transformers": hf.encode(text, add_special_tokens=False)}
            if llama is not None:
                row["llama_cpp"] = llama.encode(text, parse_special=True)
            row["expected"] = row.get("llama_cpp", row["transformers"])
            special_rows.append(row)
        decode_rows = []
        # sequences an encoder would not produce: BOS first, half an emoji, lone spaces, EOS, a space byte first
        extra = [["<s>", "▁Hello"], ["<0xF0>", "<0x9F>"], ["▁", "▁"], ["</s>"], ["<0x20>", "▁a"]]
        for pieces in extra:
            ids = [vocab_id(vocab, p) for p in pieces]
            row = {"ids": ids, "sentencepiece": sp.decode(ids), "transformers": hf.decode(ids)}
            if llama is not None:
                row["llama_cpp"] = llama.decode(ids)
            row["expected"] = row.get("llama_cpp", row["sentencepiece"])
            decode_rows.append(row)

    disagreements = []
    for row in rows:
        for ref in ("sentencepiece", "transformers", "llama_cpp"):
            if ref in row and row[ref] != row["expected"]:
                disagreements.append(f"encode {row['text']!r}: {ref} {row[ref]} != expected {row['expected']}")
        for ref in ("decoded_sentencepiece", "decoded_transformers"):
            if row[ref] != row["decoded"]:
                disagreements.append(f"decode {row['text']!r}: {ref} {row[ref]!r} != expected {row['decoded']!r}")
    for row in special_rows:
        if row["transformers"] != row["expected"]:
            disagreements.append(f"encode_with_special {row['text']!r}: transformers {row['transformers']} != "
                                 f"expected {row['expected']}")
    for row in decode_rows:
        for ref in ("sentencepiece", "transformers"):
            if row[ref] != row["expected"]:
                disagreements.append(f"decode {row['ids']}: {ref} {row[ref]!r} != expected {row['expected']!r}")

    packages = ["sentencepiece", "transformers", "tokenizers", "gguf"] + (["llama-cpp-python"] if llama else [])
    versions = {name: importlib.metadata.version(name) for name in packages}
    data = {
        "about": "Made by scripts/make_spm_reference.py: a SentencePiece BPE vocabulary trained with Llama 2's "
                 "settings, and the ids llama.cpp, sentencepiece and transformers give. `expected` is llama.cpp's.",
        "versions": versions,
        "vocab": {
            "tokens": [p for p, _, _ in vocab],
            "scores": [s for _, s, _ in vocab],
            "token_types": [t for _, _, t in vocab],
            "unk_id": 0, "bos_id": 1, "eos_id": 2,
            "add_bos_token": True, "add_eos_token": False, "add_space_prefix": True,
        },
        "encode": rows,
        "encode_with_special": special_rows,
        "decode": decode_rows,
        "disagreements": disagreements,
    }
    FIXTURE.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {FIXTURE.relative_to(ROOT)}: {len(rows)} encode rows, {len(special_rows)} with specials, "
          f"{len(decode_rows)} decode rows")
    for line in disagreements:
        print("  differs:", line)
    return 0


def vocab_id(vocab: list[tuple[str, float, int]], piece: str) -> int:
    return next(i for i, (p, _, _) in enumerate(vocab) if p == piece)


if __name__ == "__main__":
    raise SystemExit(main())
