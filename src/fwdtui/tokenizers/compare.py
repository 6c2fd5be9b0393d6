"""Running one text through several tokenizers: counts, where each cuts, and where they agree.

Everything works on the UTF-8 bytes of the text. A tokenization is the list of its tokens' bytes;
its boundaries are the byte offsets where one token ends and the next begins. Two tokenizers
"agree" at an offset when both cut there. A boundary inside a character's bytes means a token
holds part of that character.

Also here: where the real tokenizers come from on this machine (GPT-2's files, OpenAI's tables,
SmolLM2's GGUF, the loaded model), the same sentence in several scripts for cost comparisons,
and `as_trained`, which turns a real vocabulary into our own trainer's tokenizer so that its
merges can be replayed step by step.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fwdtui.errors import FwdtuiError, WeightsError
from fwdtui.tokenizers.trainer import GPT2_SPLIT_PATTERN, ENDOFTEXT, TrainedTokenizer, utf8

# --------------------------------------------------------------------------- one tokenization


@dataclass(frozen=True)
class Tokenization:
    """A text as one tokenizer cuts it: ids and the bytes of each token."""

    name: str
    text: str
    ids: tuple[int, ...]
    pieces: tuple[bytes, ...]  # [n_tokens] the bytes of each token, in order

    @property
    def n_tokens(self) -> int:
        return len(self.ids)

    @property
    def n_bytes(self) -> int:
        return len(utf8(self.text))

    @property
    def n_chars(self) -> int:
        return len(self.text)

    @property
    def bytes_per_token(self) -> float:
        """Compression: how many bytes of text one token carries on average."""
        return self.n_bytes / self.n_tokens if self.n_tokens else 0.0

    @property
    def tokens_per_char(self) -> float:
        return self.n_tokens / self.n_chars if self.n_chars else 0.0

    @property
    def exact(self) -> bool:
        """True when the tokens' bytes put back together are the text's bytes (no normalizer)."""
        return b"".join(self.pieces) == utf8(self.text)

    @property
    def ends(self) -> np.ndarray:
        """[n_tokens] byte offset where each token ends (the last one is n_bytes)."""
        return np.cumsum([len(p) for p in self.pieces], dtype=np.int64)

    @property
    def boundaries(self) -> frozenset[int]:
        """Inner cut points: byte offsets strictly between the first and the last byte."""
        return frozenset(int(e) for e in self.ends[:-1])


def tokenize(tokenizer: Any, text: str, name: str | None = None) -> Tokenization:
    """Encode `text` (special strings stay plain text) and keep each token's bytes."""
    from fwdtui.tokenizers import text_pieces

    ids = tuple(int(i) for i in tokenizer.encode(text))
    pieces = tuple(text_pieces(tokenizer, ids))  # SentencePiece's added front space is not in the text
    label = name or getattr(tokenizer, "label", None) or getattr(tokenizer, "name", "tokenizer")
    return Tokenization(str(label), text, ids, pieces)


def char_byte_starts(text: str) -> np.ndarray:
    """[n_chars + 1] byte offset where each character starts, then the total byte length."""
    lengths = [len(utf8(ch)) for ch in text]
    return np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int64)


def token_of_char(tok: Tokenization) -> np.ndarray:
    """[n_chars] index of the token holding each character's first byte.

    Works from byte offsets, so a character split over two tokens belongs to the first. For a
    tokenization that is not `exact` (a normalizer changed the text) the result is approximate.
    """
    starts = char_byte_starts(tok.text)[:-1]  # [n_chars]
    if not tok.pieces:
        return np.zeros(len(starts), dtype=np.int64)
    # the token whose end is the first one past the character's start
    return np.searchsorted(tok.ends, starts, side="right").clip(0, tok.n_tokens - 1)


def split_chars(tok: Tokenization) -> np.ndarray:
    """[n_chars] True for a character whose bytes are spread over more than one token."""
    starts = char_byte_starts(tok.text)  # [n_chars + 1]
    inner = np.array(sorted(tok.boundaries), dtype=np.int64)
    if inner.size == 0 or len(starts) < 2:
        return np.zeros(max(0, len(starts) - 1), dtype=bool)
    # a cut strictly inside (start, end) of the character's byte range
    first_after_start = np.searchsorted(inner, starts[:-1], side="right")
    first_at_end = np.searchsorted(inner, starts[1:], side="left")
    return first_at_end > first_after_start


def common_boundaries(tokenizations: Sequence[Tokenization]) -> frozenset[int]:
    """Byte offsets where every tokenization cuts (the empty set for none given)."""
    if not tokenizations:
        return frozenset()
    out = set(tokenizations[0].boundaries)
    for tok in tokenizations[1:]:
        out &= tok.boundaries
    return frozenset(out)


def boundary_agreement(a: Tokenization, b: Tokenization) -> float:
    """Jaccard overlap of two tokenizations' cut points (1.0: identical cuts; 1.0 if neither cuts)."""
    union = a.boundaries | b.boundaries
    return len(a.boundaries & b.boundaries) / len(union) if union else 1.0


# --------------------------------------------------------------------------- the same text in many scripts

# The same short sentence in several languages and scripts (and two non-prose samples), to show
# what a tokenizer charges for each: English-heavy training makes English cheap.
SCRIPT_SAMPLES: dict[str, str] = {
    "English": "The model reads the text in small pieces.",
    "French": "Le modèle lit le texte par petits morceaux.",
    "German": "Das Modell liest den Text in kleinen Stücken.",
    "Spanish": "El modelo lee el texto en trozos pequeños.",
    "Russian": "Модель читает текст небольшими частями.",
    "Greek": "Το μοντέλο διαβάζει το κείμενο σε μικρά κομμάτια.",
    "Arabic": "يقرأ النموذج النص على شكل قطع صغيرة.",
    "Hindi": "मॉडल पाठ को छोटे टुकड़ों में पढ़ता है।",
    "Chinese": "模型把文本分成小块来读。",
    "Japanese": "モデルはテキストを小さな断片に分けて読みます。",
    "Korean": "모델은 텍스트를 작은 조각으로 나누어 읽습니다.",
    "Python": "for piece in text.split():\n    model.read(piece)",
    "Emoji": "👍🎉🙂 ✨🚀 👨‍👩‍👧",
}


@dataclass(frozen=True)
class ScriptCost:
    """Tokens one tokenizer spends on each sample (same order as the samples)."""

    name: str
    languages: tuple[str, ...]
    n_tokens: tuple[int, ...]
    n_chars: tuple[int, ...]

    @property
    def tokens_per_char(self) -> tuple[float, ...]:
        return tuple(t / c if c else 0.0 for t, c in zip(self.n_tokens, self.n_chars))

    def relative_to(self, language: str = "English") -> tuple[float, ...]:
        """Tokens for each sample divided by tokens for `language` (the "tax" of a script)."""
        base = self.n_tokens[self.languages.index(language)] or 1
        return tuple(t / base for t in self.n_tokens)


def script_costs(tokenizer: Any, name: str, samples: dict[str, str] | None = None) -> ScriptCost:
    """Count the tokens `tokenizer` needs for every sample sentence."""
    samples = SCRIPT_SAMPLES if samples is None else samples
    langs = tuple(samples)
    counts = tuple(len(tokenizer.encode(samples[lang])) for lang in langs)
    chars = tuple(len(samples[lang]) for lang in langs)
    return ScriptCost(name, langs, counts, chars)


# --------------------------------------------------------------------------- where tokenizers come from


@dataclass(frozen=True)
class Candidate:
    """A tokenizer to compare, or why it is not available here."""

    key: str  # "gpt2", "cl100k_base", "o200k_base", "smollm2", "model", "trained"
    label: str
    tokenizer: Any | None
    missing: str = ""  # why it is absent, and the fix


def gpt2_dir() -> Path | None:
    """A folder with GPT-2's tokenizer files: $FWDTUI_GPT2_TOKENIZER_DIR, weights/gpt2, or the
    shared test data next to a development checkout."""
    candidates: list[Path] = []
    if os.environ.get("FWDTUI_GPT2_TOKENIZER_DIR"):
        candidates.append(Path(os.environ["FWDTUI_GPT2_TOKENIZER_DIR"]))
    try:
        from fwdtui.loaders.registry import model_dir

        candidates.append(model_dir("gpt2"))
    except Exception:  # the loaders are optional for this module
        pass
    # src/fwdtui/tokenizers/compare.py -> the checkout's ../shared/data/gpt2 (development only)
    candidates.append(Path(__file__).resolve().parents[4] / "shared" / "data" / "gpt2")
    for folder in candidates:
        if (folder / "encoder.json").is_file() and (folder / "vocab.bpe").is_file():
            return folder
        if (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
            return folder
    return None


_loaded: dict[str, Any] = {}
_loaded_lock = threading.Lock()


def _once(key: str, make: Callable[[], Any]) -> Any:
    """Load a tokenizer once per process (the files do not change while the app runs)."""
    with _loaded_lock:
        if key in _loaded:
            return _loaded[key]
    value = make()
    with _loaded_lock:
        return _loaded.setdefault(key, value)


def gpt2_tokenizer() -> Any:
    """GPT-2's tokenizer from its files; WeightsError naming the fix when they are not here."""
    folder = gpt2_dir()
    if folder is None:
        raise WeightsError(
            "GPT-2's tokenizer files are not on this machine.",
            "Run `fwdtui download gpt2`, or set FWDTUI_GPT2_TOKENIZER_DIR to a folder with "
            "encoder.json + vocab.bpe.",
        )
    from fwdtui.tokenizers import load_tokenizer

    def make() -> Any:
        tok = load_tokenizer(folder)
        tok.name = "gpt2"
        return tok

    return _once(f"gpt2:{folder}", make)


def smollm2_tokenizer() -> Any:
    """SmolLM2's tokenizer from the downloaded model (folder or GGUF), loaded once."""
    from fwdtui.loaders.registry import local_path
    from fwdtui.tokenizers import load_gguf_tokenizer, load_tokenizer

    path = local_path("smollm2-135m")
    if path is None:
        raise WeightsError(
            "SmolLM2 is not downloaded.", "Run `fwdtui download smollm2-135m` to get it (135 MB)."
        )

    def make() -> Any:
        tok = load_gguf_tokenizer(path, "smollm2") if path.suffix == ".gguf" else load_tokenizer(path)
        tok.name = "smollm2"
        return tok

    return _once(f"smollm2:{path}", make)


def _is_like(model_tok: Any, family: str) -> bool:
    """Whether the loaded model's tokenizer is the GPT-2 one or the SmolLM2 one (same vocabulary)."""
    n = getattr(model_tok, "n_vocab", 0)
    if family == "gpt2":
        return n == 50257 and getattr(model_tok, "eos_id", None) == 50256
    return n == 49152 and "<|im_start|>" in getattr(model_tok, "special_tokens", {})


def candidates(
    model: Any = None,
    trained: Any = None,
    keys: Iterable[str] = ("gpt2", "cl100k_base", "o200k_base", "smollm2", "model", "trained"),
) -> list[Candidate]:
    """The tokenizers to compare, in a fixed order, each loaded or with the reason it is missing.

    The loaded model's tokenizer stands in for GPT-2's or SmolLM2's when it is that vocabulary,
    and is listed on its own ("model") when it is something else.
    """
    from fwdtui.tokenizers import openai_files

    model_tok = getattr(model, "tokenizer", None)
    out: list[Candidate] = []
    for key in keys:
        try:
            if key == "gpt2":
                if model_tok is not None and _is_like(model_tok, "gpt2"):
                    out.append(Candidate(key, "GPT-2", model_tok))
                else:
                    out.append(Candidate(key, "GPT-2", gpt2_tokenizer()))
            elif key in openai_files.SPECS:
                spec = openai_files.SPECS[key]
                out.append(Candidate(key, spec.label, openai_files.load_openai_tokenizer(key)))
            elif key == "smollm2":
                if model_tok is not None and _is_like(model_tok, "smollm2"):
                    out.append(Candidate(key, "SmolLM2", model_tok))
                else:
                    out.append(Candidate(key, "SmolLM2", smollm2_tokenizer()))
            elif key == "model":
                if model_tok is not None and not (_is_like(model_tok, "gpt2") or _is_like(model_tok, "smollm2")):
                    name = getattr(getattr(model, "info", None), "name", None) or getattr(model_tok, "name", "model")
                    out.append(Candidate(key, f"model: {name}", model_tok))
            elif key == "trained":
                if trained is not None:
                    out.append(Candidate(key, f"ours ({trained.n_vocab:,} tokens)", trained))
                else:
                    out.append(Candidate(key, "ours (trained)", None,
                                         "Train one in the 'BPE from raw bytes' chapter (or press t here)."))
        except FwdtuiError as err:
            out.append(Candidate(key, key, None, f"{err.message} {err.fix or ''}".strip()))
    return out


# --------------------------------------------------------------------------- real vocabularies as ours


def as_trained(tokenizer: Any, name: str | None = None) -> TrainedTokenizer:
    """A real byte-level BPE tokenizer (fwdtui.tokenizers.bpe.BPETokenizer) as our own
    TrainedTokenizer with the model's ids, so `encode_steps` can replay its merges one by one.

    Its merge list is in rank order as bytes pairs; each becomes (id of a, id of b) -> id of a+b.
    A rule that makes a token an earlier rule already made adds nothing and is skipped; special
    tokens keep their ids.
    """
    merges_bytes = getattr(tokenizer, "merges", None)
    if not merges_bytes:
        raise WeightsError(
            f"The tokenizer {getattr(tokenizer, 'name', '?')} has no merge rules to replay.",
            "Load a BPE model (gpt2 or smollm2-135m), or train one in the 'BPE from raw bytes' chapter.",
        )
    specials = dict(tokenizer.special_tokens)
    special_ids = set(specials.values())
    id_of: dict[bytes, int] = {}
    for token_id in range(tokenizer.n_vocab):
        if token_id in special_ids:
            continue
        data = tokenizer.token_bytes(token_id)
        if data:
            id_of.setdefault(data, token_id)
    # A few vocabularies (SmolLM2) lack some control bytes; give each an id past the end so
    # every text can still be written (the real tokenizer drops such a byte instead).
    extra = iter(range(tokenizer.n_vocab, tokenizer.n_vocab + 256))
    byte_ids = tuple(id_of[bytes([b])] if bytes([b]) in id_of else next(extra) for b in range(256))
    made: set[int] = set(byte_ids)
    merges: dict[tuple[int, int], int] = {}
    for a, b in merges_bytes:
        ia, ib, ij = id_of.get(a), id_of.get(b), id_of.get(a + b)
        if ia is None or ib is None or ij is None or ij in made:
            continue
        if ia not in made or ib not in made:
            continue  # a rule whose parts are not made yet cannot fire in rank order
        merges[(ia, ib)] = ij
        made.add(ij)
    return TrainedTokenizer(
        merges=merges,
        pattern=getattr(tokenizer, "pattern", GPT2_SPLIT_PATTERN),
        special_tokens=specials,
        name=name or f"{tokenizer.name} (replayed)",
        byte_ids=byte_ids,
    )


__all__ = [
    "ENDOFTEXT",
    "SCRIPT_SAMPLES",
    "Candidate",
    "ScriptCost",
    "Tokenization",
    "as_trained",
    "boundary_agreement",
    "candidates",
    "char_byte_starts",
    "common_boundaries",
    "gpt2_dir",
    "gpt2_tokenizer",
    "script_costs",
    "smollm2_tokenizer",
    "split_chars",
    "token_of_char",
    "tokenize",
]
