"""Byte-level BPE tokenizers (GPT-2, Llama 3, Qwen2, SmolLM2...) run by tiktoken, with the model's own ids."""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import regex
import tiktoken

from fwdtui.errors import WeightsError
from fwdtui.tokenizers.gpt2 import GPT2_PATTERN, bytes_to_unicode, token_str_to_bytes
from fwdtui.tokenizers.trainer import merge

# Llama 3's split (also llama.cpp's "llama-bpe"): case-insensitive contractions, a word may take
# one leading non-letter (so "$hello" or "\nhello" is one piece), numbers in groups of up to 3
# digits, punctuation keeps its trailing newlines.
LLAMA3_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"""
    r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
# Qwen2 / Qwen2.5: Llama 3's split with every digit on its own.
QWEN2_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"""
    r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
# SmolLM2 (and StarCoder): its tokenizer.json first isolates every digit (a Digits pre-tokenizer
# with individual_digits) and then applies GPT-2's split to the pieces between digits. One regex
# does both: a digit is always a piece of its own (` ?\p{N}+` becomes `\p{N}`, so no space is
# glued to it), and a whitespace run that ends just before a digit behaves as if it ended the
# text, which is what `(?![^\s\p{N}])` says ("not followed by something other than a space or a
# digit"; GPT-2's own `(?!\S)` would leave the last space alone here).
SMOLLM_PATTERN = (
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+|\s+(?![^\s\p{N}])|\s+"""
)

# llama.cpp's names for the split (the GGUF key `tokenizer.ggml.pre`) -> our pattern.
PRE_PATTERNS: dict[str, str] = {
    "default": GPT2_PATTERN,
    "gpt2": GPT2_PATTERN,
    "gpt-2": GPT2_PATTERN,
    "mpt": GPT2_PATTERN,
    "olmo": GPT2_PATTERN,
    "jais": GPT2_PATTERN,
    "llama-bpe": LLAMA3_PATTERN,
    "llama3": LLAMA3_PATTERN,
    "llama-v3": LLAMA3_PATTERN,
    "dbrx": LLAMA3_PATTERN,
    "smaug-bpe": LLAMA3_PATTERN,
    "qwen2": QWEN2_PATTERN,
    "stablelm2": QWEN2_PATTERN,
    "smollm": SMOLLM_PATTERN,
    "starcoder": SMOLLM_PATTERN,
    "refact": SMOLLM_PATTERN,
    "codeshell": SMOLLM_PATTERN,
}

# GGUF token types (llama.cpp): 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
TOKEN_TYPE_CONTROL = 3
TOKEN_TYPE_USER_DEFINED = 4


@functools.lru_cache(maxsize=16)
def _special_pattern(names: tuple[str, ...]) -> regex.Pattern:
    """One alternation of the special strings, longest first so that the longest match wins."""
    return regex.compile("(" + "|".join(regex.escape(s) for s in names) + ")")


def encode_around_specials(text: str, special_tokens: dict[str, int], encode: Callable[[str], list[int]]) -> list[int]:
    """Ids of `text` where every special-token string becomes its one id and the text between goes
    through `encode` (what `encode_with_special` does, for every tokenizer)."""
    if not special_tokens:  # an empty alternation would match between every two characters
        return encode(text)
    out: list[int] = []
    for chunk in _special_pattern(tuple(sorted(special_tokens, key=len, reverse=True))).split(text):
        if chunk in special_tokens:
            out.append(special_tokens[chunk])
        elif chunk:
            out.extend(encode(chunk))
    return out


@dataclass(eq=False)
class BPETokenizer:
    """A byte-level BPE tokenizer: tiktoken does the work, arrays translate its ranks to model ids.

    tiktoken numbers tokens by merge priority ("rank"): the 256 bytes first, then one rank per
    merge rule in the order they were learned. Most vocabularies number them the same way but not
    all (GPT-2's byte tokens, SmolLM2's special tokens at ids 0..16), so `rank_to_id` maps what
    tiktoken returns to the ids the model's embedding table expects. A byte the vocabulary lacks
    gets a rank but id -1 (see `_encode_exact`).
    """

    name: str
    encoding: tiktoken.Encoding
    rank_to_id: np.ndarray  # [n_ranks] int64, -1 for a byte with no token of its own
    id_to_bytes: list[bytes]  # [n_vocab] the bytes each id stands for (b"" for unused ids)
    merges: list[tuple[bytes, bytes]]  # the merge rules as bytes, in the order they were learned
    special_tokens: dict[str, int]
    pattern: str
    bos_id: int | None = None
    eos_id: int | None = None
    chat_template: str | None = None
    pre: str | None = None  # the split's name (llama.cpp's) when we know it
    warning: str | None = None  # set when we had to guess (an unknown split, ...)
    normalizer: str | None = None  # a Unicode normal form applied first ("NFC" for Qwen2)
    add_bos: bool = False  # the model expects bos_id before a prompt (Llama 3 base); encode never adds it
    _compiled: regex.Pattern = field(init=False, repr=False)
    _merge_table: dict[tuple[int, int], tuple[int, int]] | None = field(
        init=False, repr=False, default=None
    )

    def __post_init__(self) -> None:
        self._compiled = regex.compile(self.pattern)
        self._byte_ids = self.rank_to_id[:256]  # [256] id of each single byte (or -1)
        self._special_ids = frozenset(self.special_tokens.values())

    # -- the contract ---------------------------------------------------------------------------
    @property
    def n_vocab(self) -> int:
        return len(self.id_to_bytes)

    def encode(self, text: str) -> list[int]:
        """Text -> ids. Special-token strings typed by a user stay plain text.

        >>> tok.encode("Hello, world!")  # GPT-2
        [15496, 11, 995, 0]
        """
        text = self._normalize(text)
        ids = self.rank_to_id[self.encoding.encode_ordinary(text)]
        if (ids < 0).any():  # a byte with no token: only the slow exact path agrees with HF
            return self._encode_exact(text)
        return ids.tolist()

    def encode_with_special(self, text: str) -> list[int]:
        """Text -> ids, where special-token strings ("<|im_start|>") become their single ids."""
        text = self._normalize(text)
        ids = self.rank_to_id[self.encoding.encode(text, allowed_special="all")]
        if not (ids < 0).any():
            return ids.tolist()
        return encode_around_specials(text, self.special_tokens, self.encode)

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """Ids -> the exact bytes they stand for (a token may hold part of a character)."""
        return b"".join(self.token_bytes(i) for i in ids)

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text; bytes that are not valid UTF-8 on their own become U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes of one token, e.g. b' cat', or b'\\xf0\\x9f' for half an emoji."""
        if not 0 <= token_id < len(self.id_to_bytes):
            raise ValueError(f"token id {token_id} is outside this vocabulary of {self.n_vocab}")
        return self.id_to_bytes[token_id]

    def pre_tokenize(self, text: str) -> list[str]:
        """The regex split that runs before any merge: BPE never merges across these pieces."""
        return self._compiled.findall(self._normalize(text))

    def _normalize(self, text: str) -> str:
        return unicodedata.normalize(self.normalizer, text) if self.normalizer else text

    # -- helpers for the chapters ---------------------------------------------------------------
    def token_str(self, token_id: int) -> str:
        """A token as readable text (partial UTF-8 shown with U+FFFD)."""
        return self.token_bytes(token_id).decode("utf-8", errors="replace")

    def is_special(self, token_id: int) -> bool:
        """True for control tokens ("<|endoftext|>", "<|im_start|>"): never made by merges."""
        return token_id in self._special_ids

    # -- the exact slow path --------------------------------------------------------------------
    def _encode_exact(self, text: str) -> list[int]:
        """Hugging Face's BPE, in Python: used only when the text holds a byte with no token.

        Hugging Face drops such a byte (there is no unknown token) and then merges its
        neighbours as if it were not there; tiktoken cannot skip a byte, so we do it here.
        """
        if self._merge_table is None:  # (id_a, id_b) -> (priority, id of a+b), built on first use
            id_of = {data: i for i, data in enumerate(self.id_to_bytes) if data and i not in self._special_ids}
            self._merge_table = {}
            for priority, (a, b) in enumerate(self.merges):
                key = (id_of[a], id_of[b])
                self._merge_table.setdefault(key, (priority, id_of[a + b]))
        out: list[int] = []
        for piece in self.pre_tokenize(text):
            word = [int(self._byte_ids[b]) for b in piece.encode("utf-8")]
            out.extend(bpe_merge([i for i in word if i >= 0], self._merge_table))
        return out


def bpe_merge(word: list[int], merge_table: dict[tuple[int, int], tuple[int, int]]) -> list[int]:
    """Merge the lowest-ranked adjacent pair until no pair has a merge rule (the classic loop).

    >>> bpe_merge([1, 2, 3], {(1, 2): (0, 9), (9, 3): (1, 7)})
    [7]
    """
    while len(word) > 1:
        ranked = [(merge_table[p][0], i) for i, p in enumerate(zip(word, word[1:])) if p in merge_table]
        if not ranked:
            break
        rank, i = min(ranked)
        pair = (word[i], word[i + 1])
        word = merge(word, pair, merge_table[pair][1])  # every occurrence, left to right
    return word


def build_bpe_tokenizer(
    name: str,
    vocab: dict[str, int],
    merges: Sequence[tuple[str, str]],
    pattern: str = GPT2_PATTERN,
    special_tokens: dict[str, int] | None = None,
    *,
    bos_id: int | None = None,
    eos_id: int | None = None,
    chat_template: str | None = None,
    pre: str | None = None,
    warning: str | None = None,
    n_vocab: int | None = None,
    normalizer: str | None = None,
    add_bos: bool = False,
    source: str = "the tokenizer",
) -> BPETokenizer:
    """Build a tokenizer from a byte-level BPE vocabulary (strings in GPT-2's byte-to-unicode form).

    Ranks: the 256 single bytes get 0..255 in byte order, merge i makes token a+b with rank
    256 + i. Any vocabulary entry that is neither (like "<|endoftext|>") is a special token; it
    is kept as its literal text, never split into bytes.

    Worked example: vocab {bytes..., "ab": 300, "abc": 301}, merges [("a","b"), ("ab","c")]
    gives "ab" rank 256 and "abc" rank 257; tiktoken turns "abc" into [257], and
    rank_to_id[257] = 301 is what `encode` returns.
    """
    b2u = bytes_to_unicode()
    # An empty special token would match everywhere (tiktoken then never finishes): drop it.
    special_tokens = {token: i for token, i in (special_tokens or {}).items() if token}
    n_entries = len(vocab) + len(special_tokens)
    if n_vocab is None:
        n_vocab = 1 + max([*vocab.values(), *special_tokens.values()], default=-1)
    # Ids index a table: one id far beyond the number of entries would allocate for all the ids between.
    if n_vocab > 2 * n_entries + 1024 or min([*vocab.values(), *special_tokens.values()], default=0) < 0:
        raise WeightsError(
            f"{source} has {n_entries} tokens but ids up to {n_vocab - 1} (or below 0).",
            "The tokenizer files are damaged; download the model again.",
        )

    # rank -> (bytes, id), in rank order
    rank_bytes: list[bytes] = []
    rank_ids: list[int] = []
    missing_bytes: list[int] = []
    for b in range(256):
        rank_bytes.append(bytes([b]))
        token_id = vocab.get(b2u[b], -1)
        rank_ids.append(token_id)
        if token_id < 0:
            missing_bytes.append(b)
    seen = set(rank_bytes)
    merge_bytes: list[tuple[bytes, bytes]] = []
    for i, (a, b) in enumerate(merges):
        a_bytes, b_bytes = token_str_to_bytes(a), token_str_to_bytes(b)
        merged = vocab.get(a + b)
        if a_bytes is None or b_bytes is None or merged is None:
            raise WeightsError(
                f"Merge rule {i} of {source} ({a!r} + {b!r}) does not make a token of its vocabulary.",
                "The vocabulary and merge files do not belong together; download the model again.",
            )
        data = a_bytes + b_bytes
        merge_bytes.append((a_bytes, b_bytes))
        if data in seen:  # two rules make the same token: the earlier one decides its priority
            continue
        seen.add(data)
        rank_bytes.append(data)
        rank_ids.append(merged)
    if len(missing_bytes) == 256:  # not a byte-level vocabulary: no text could be encoded at all
        raise WeightsError(
            f"{source} has no token for {len(missing_bytes)} of the 256 byte values: it is not a byte-level BPE vocabulary.",
            "fwdtui reads byte-level BPE tokenizers (GPT-2, Llama 3, Qwen2, SmolLM2); use one of those.",
        )
    made_by_rank = set(rank_ids)

    # everything else in the vocabulary is special: added or control tokens kept as literal text
    for token, token_id in vocab.items():
        if token_id not in made_by_rank and token not in special_tokens:
            special_tokens[token] = token_id
    special_ranks: dict[str, int] = {}
    for token, token_id in special_tokens.items():
        special_ranks[token] = len(rank_ids)
        rank_ids.append(token_id)

    id_to_bytes = [b""] * n_vocab
    for data, token_id in zip(rank_bytes, rank_ids):
        if 0 <= token_id < n_vocab:
            id_to_bytes[token_id] = data
    for token, token_id in special_tokens.items():
        if not 0 <= token_id < n_vocab:
            raise WeightsError(
                f"Special token {token!r} of {source} has id {token_id}, outside the vocabulary of {n_vocab}.",
                "The tokenizer files are inconsistent; download the model again.",
            )
        id_to_bytes[token_id] = token.encode("utf-8")

    try:
        encoding = tiktoken.Encoding(
            name,
            pat_str=pattern,
            mergeable_ranks={data: rank for rank, data in enumerate(rank_bytes)},
            special_tokens=special_ranks,
        )
    except ValueError as err:  # a split pattern the Rust regex engine refuses
        raise WeightsError(
            f"The split pattern of {source} cannot be used: {err}.",
            "Report this model; as a workaround, use its GGUF or Hugging Face folder instead.",
        ) from None
    if missing_bytes and warning is None:
        warning = (
            f"{len(missing_bytes)} byte values have no token; like Hugging Face, we drop them."
        )
    def in_vocab(token_id: object) -> int | None:
        ok = isinstance(token_id, int) and not isinstance(token_id, bool) and 0 <= token_id < n_vocab
        return token_id if ok else None  # a damaged file's bos/eos must never reach the model as an id

    bos_id, eos_id = in_vocab(bos_id), in_vocab(eos_id)
    return BPETokenizer(
        name=name,
        encoding=encoding,
        rank_to_id=np.asarray(rank_ids, dtype=np.int64),
        id_to_bytes=id_to_bytes,
        merges=merge_bytes,
        special_tokens=special_tokens,
        pattern=pattern,
        bos_id=bos_id,
        eos_id=eos_id,
        chat_template=chat_template,
        pre=pre,
        warning=warning,
        normalizer=normalizer,
        add_bos=add_bos,
    )


def pattern_for_pre(pre: str | None) -> tuple[str, str | None]:
    """llama.cpp's split name -> (our regex, a warning if we had to fall back to GPT-2's)."""
    if pre is None:
        return GPT2_PATTERN, None
    pattern = PRE_PATTERNS.get(pre.lower())
    if pattern is None:
        return GPT2_PATTERN, (
            f"Unknown pre-tokenizer {pre!r}: using GPT-2's split, so some ids may differ from "
            "the model's own tokenizer."
        )
    return pattern, None


def from_gguf_metadata(
    tokens: list[str],
    merges: list[str],
    token_types: list[int] | None,
    pre: str | None,
    bos_id: int | None,
    eos_id: int | None,
    chat_template: str | None,
    name: str,
    add_bos: bool = False,
) -> BPETokenizer:
    """Build the tokenizer of a GGUF file from its `tokenizer.ggml.*` values ("gpt2" model only).

    `tokens` are in GPT-2's byte-to-unicode form, `merges` are "a b" strings in rank order,
    token type 3 (control) and 4 (user-defined) are special tokens kept as literal text.
    """
    if not merges:  # SentencePiece GGUFs ("llama" model: Llama 2, Mistral) have none: fwdtui.tokenizers.spm reads them
        raise WeightsError(
            f"{name} has no BPE merge rules (tokenizer.ggml.merges): its tokenizer is not byte-level BPE.",
            "A GGUF whose tokenizer.ggml.model is 'llama' is SentencePiece: load it with load_gguf_tokenizer "
            "(or fwdtui --model PATH). One that says 'gpt2' is damaged: download it again.",
        )
    pairs: list[tuple[str, str]] = []
    for i, rule in enumerate(merges):
        a, sep, b = rule.partition(" ")
        if not sep or not a or not b:
            raise WeightsError(
                f"{name}: merge rule {i} ({rule[:40]!r}) is not of the form 'a b'.",
                "The GGUF file is damaged; download it again.",
            )
        pairs.append((a, b))
    if token_types is not None and len(token_types) != len(tokens):
        raise WeightsError(
            f"{name}: {len(token_types)} token types for {len(tokens)} tokens.",
            "The GGUF file is damaged; download it again.",
        )
    # a control token that a merge also makes (rare) is an ordinary token as far as BPE goes
    made = {a + b for a, b in pairs}
    special: dict[str, int] = {}
    vocab: dict[str, int] = {}
    for token_id, token in enumerate(tokens):
        kind = token_types[token_id] if token_types is not None else 1
        if kind in (TOKEN_TYPE_CONTROL, TOKEN_TYPE_USER_DEFINED) and token not in made:
            special.setdefault(token, token_id)
        else:
            vocab.setdefault(token, token_id)
    pattern, warning = pattern_for_pre(pre)
    return build_bpe_tokenizer(
        name,
        vocab,
        pairs,
        pattern,
        special,
        bos_id=bos_id,
        eos_id=eos_id,
        chat_template=chat_template,
        pre=pre,
        warning=warning,
        n_vocab=len(tokens),
        source=f"the GGUF file {name}",
        add_bos=add_bos,
    )
