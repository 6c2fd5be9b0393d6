"""SentencePiece-style BPE tokenizers (Llama 2, TinyLlama, Mistral 7B, CodeLlama) from GGUF metadata.

A SentencePiece vocabulary is a list of pieces, each with a score, and no merge list. Spaces are
written "▁" (U+2581) and the text gets one in front ("Hello world" -> "▁Hello▁world"), so a
word looks the same at the start of a text and inside it. Encoding starts from single characters
and keeps merging the adjacent pair whose concatenation is a piece with the highest score (the
leftmost on ties) until no pair makes a piece. A character that no piece covers falls back to
byte tokens "<0x..>" for its UTF-8 bytes. This is llama.cpp's `llm_tokenizer_spm`, which is what
defines a GGUF file's tokenization; sentencepiece's own BPE encoder gives the same ids.

Worked example, pieces and scores ▁ -1, a -2, b -3, c -4, ▁a -5, ab -6, bc -7, ▁ab -8:
"abc" is "▁abc", the symbols ▁ a b c. The pairs that make pieces are ▁a (-5), ab (-6) and bc (-7):
▁a merges -> ▁a b c. Now ▁a+b makes ▁ab (-8) and b+c makes bc (-7): bc merges -> ▁a bc, and ▁abc
is no piece, so the ids are those of ▁a and bc. Had ab scored -4.5, ab would have merged first
(▁ ab c), then ▁+ab -> ▁ab c.
"""

from __future__ import annotations

import heapq
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fwdtui.errors import WeightsError
from fwdtui.tokenizers.bpe import encode_around_specials

SPACE = "\u2581"  # "▁": a space as SentencePiece writes it inside a piece

# GGUF token types (llama.cpp's llama_token_type)
TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_UNUSED, TOKEN_BYTE = 1, 2, 3, 4, 5, 6
# Control, user-defined and unknown pieces are special tokens: typed text never becomes one, as in
# our byte-level BPE. Byte pieces are reached only by the fallback. Every other piece can be merged into.
_SPECIAL_TYPES = frozenset({TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_USER_DEFINED})
_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")
_WORD = re.compile(f"{SPACE}*[^{SPACE}]+|{SPACE}+")  # a word with the "▁"s before it, or a run of "▁" at the end
_SPACE_AFTER_CHAR = re.compile(f"[^{SPACE}]{SPACE}")

_FIX_DAMAGED = "The GGUF file is damaged; download it again."


@dataclass(eq=False)
class SentencePieceTokenizer:
    """A SentencePiece BPE vocabulary: pieces, their scores and types, run the way llama.cpp runs them.

    Same contract as `BPETokenizer` (encode, encode_with_special, decode, token_bytes, n_vocab,
    special_tokens, bos/eos). It has no merge list: the scores decide which pair merges first.
    """

    name: str
    pieces: list[str]  # [n_vocab] each token as the file writes it: "▁the", "<0x0A>", "<s>"
    scores: list[float]  # [n_vocab] the higher, the earlier a pair merges into this piece
    token_types: list[int]  # [n_vocab] GGUF token types (1 normal ... 6 byte)
    bos_id: int | None = None
    eos_id: int | None = None
    unk_id: int | None = None
    pad_id: int | None = None
    add_bos: bool = True  # the model expects bos_id before a prompt; encode never adds it (as BPETokenizer)
    add_eos: bool = False
    add_space_prefix: bool = True  # "▁" in front of the text (sentencepiece's add_dummy_prefix)
    chat_template: str | None = None
    warning: str | None = None
    special_tokens: dict[str, int] = field(init=False)
    _mergeable: dict[str, tuple[float, int]] = field(init=False, repr=False)  # piece -> (score, id)
    _byte_ids: list[int] = field(init=False, repr=False)  # [256] id of "<0xXX>", -1 if missing
    _id_to_bytes: list[bytes] = field(init=False, repr=False)  # [n_vocab] what each id decodes to
    _special_ids: frozenset[int] = field(init=False, repr=False)
    _words_merge_alone: bool = field(init=False, repr=False)  # see `merge`

    def __post_init__(self) -> None:
        self._mergeable = {}
        self._byte_ids = [-1] * 256
        self._id_to_bytes = []
        self.special_tokens = {}
        for token_id, (piece, kind) in enumerate(zip(self.pieces, self.token_types)):
            score = self.scores[token_id]
            if math.isnan(score):  # a NaN would break the heap's order
                score = -math.inf
            byte = _BYTE_PIECE.fullmatch(piece)
            if byte is not None:  # found by its text, whatever its type (as llama.cpp's byte_to_token)
                self._byte_ids[int(byte.group(1), 16)] = token_id
            if kind in _SPECIAL_TYPES:
                if piece:  # an empty special would match everywhere
                    self.special_tokens[piece] = token_id
            elif kind != TOKEN_BYTE:  # normal, unused, or a type llama.cpp does not know either
                self._mergeable[piece] = (score, token_id)  # a later duplicate wins, as in llama.cpp
            self._id_to_bytes.append(_piece_bytes(piece, kind))
        self._special_ids = frozenset(self.special_tokens.values())
        self._words_merge_alone = not any(_SPACE_AFTER_CHAR.search(piece) for piece in self._mergeable)

    # -- the contract ---------------------------------------------------------------------------
    @property
    def n_vocab(self) -> int:
        return len(self.pieces)

    def encode(self, text: str) -> list[int]:
        """Text -> ids, with the "▁" prefix; special-token strings typed by a user stay plain text.

        >>> tok.encode("Hello world")  # Llama 2
        [15043, 3186]
        """
        if not text:
            return []
        return self.merge(self.normalize(text))

    def encode_with_special(self, text: str) -> list[int]:
        """Text -> ids, where special-token strings ("<s>", "[INST]") become their single ids.

        The text between two specials is encoded on its own, so it gets a "▁" prefix too, as in
        llama.cpp when it parses specials.
        """
        return encode_around_specials(text, self.special_tokens, self.encode)

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """Ids -> their bytes joined, the prefix space included (what to stream token by token)."""
        return b"".join(self.token_bytes(i) for i in ids)

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text, without the space the encoder put in front; invalid UTF-8 becomes U+FFFD.

        As llama.cpp's detokenizer: only a first token that starts with a space loses it, so
        decode(encode(text)) == text. Decoding a continuation piece by piece needs
        `decode_bytes`, or each piece would lose its leading space.
        """
        ids = [int(i) for i in ids]
        data = self.decode_bytes(ids)
        if self.add_space_prefix and ids and self.token_bytes(ids[0])[:1] == b" ":
            data = data[1:]
        return data.decode("utf-8", errors="replace")

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes of one token: b' the' for "▁the", b'\\n' for "<0x0A>", b'<s>' for a control token."""
        if not 0 <= token_id < len(self._id_to_bytes):
            raise ValueError(f"token id {token_id} is outside this vocabulary of {self.n_vocab}")
        return self._id_to_bytes[token_id]

    def pre_tokenize(self, text: str) -> list[str]:
        """The pieces no merge crosses: the words with their "▁"s (no regex split; see `merge`).

        >>> tok.pre_tokenize("Hi  there")
        ['▁Hi', '▁▁there']
        """
        if not text:
            return []
        normalized = self.normalize(text)
        return _WORD.findall(normalized) if self._words_merge_alone else [normalized]

    # -- helpers for the chapters ---------------------------------------------------------------
    def token_str(self, token_id: int) -> str:
        """A token as readable text (partial UTF-8 shown with U+FFFD)."""
        return self.token_bytes(token_id).decode("utf-8", errors="replace")

    def is_special(self, token_id: int) -> bool:
        """True for control, user-defined and unknown tokens ("<s>", "</s>", "<unk>")."""
        return token_id in self._special_ids

    def normalize(self, text: str) -> str:
        """The text as the merges see it: "▁" for every space, one more in front.

        >>> tok.normalize("Hi  there")
        '▁Hi▁▁there'
        """
        return ((" " if self.add_space_prefix else "") + text).replace(" ", SPACE)

    # -- the algorithm --------------------------------------------------------------------------
    def merge(self, text: str) -> list[int]:
        """Normalized text ("▁Hello▁world") -> ids.

        When no piece has a "▁" right after another character (true of vocabularies trained with
        sentencepiece's split_by_whitespace, such as Llama 2's and Mistral's), no merge can cross the
        start of a word, so each word ("▁Hello", "▁▁world", a run of "▁") is merged on its own: the
        same ids, in time linear in the text (one heap over a long text is slow to work through).
        """
        if not self._words_merge_alone:
            return self.merge_run(text)
        out: list[int] = []
        for word in _WORD.findall(text):
            out.extend(self.merge_run(word))
        return out

    def merge_run(self, text: str) -> list[int]:
        """Normalized text -> ids by score-ordered merging over a linked list of symbols.

        Each symbol starts as one character. `heap` holds every adjacent pair whose
        concatenation is a piece, best score first, leftmost first on ties. A popped pair is
        stale when either side has changed length since it was pushed (or was merged away):
        then it is skipped, so each merge costs O(log n) and the whole text O(n log n).
        """
        if not text:
            return []
        symbols = list(text)  # [n] the text of each symbol; "" once merged into its left neighbour
        n = len(symbols)
        prev = list(range(-1, n - 1))  # [n] linked list over the live symbols
        nxt = list(range(1, n + 1))
        nxt[-1] = -1
        mergeable = self._mergeable
        heap: list[tuple[float, int, int, int]] = []  # (-score, left, right, length of left+right)
        for i in range(n - 1):
            pair = symbols[i] + symbols[i + 1]
            found = mergeable.get(pair)
            if found is not None:
                heap.append((-found[0], i, i + 1, len(pair)))
        heapq.heapify(heap)

        def push(left: int, right: int) -> None:
            if left < 0 or right < 0:
                return
            pair = symbols[left] + symbols[right]
            found = mergeable.get(pair)
            if found is not None:
                heapq.heappush(heap, (-found[0], left, right, len(pair)))

        while heap:
            _, left, right, size = heapq.heappop(heap)
            a, b = symbols[left], symbols[right]
            if not a or not b or len(a) + len(b) != size:
                continue  # one side already merged elsewhere
            symbols[left], symbols[right] = a + b, ""
            after = nxt[right]
            nxt[left] = after
            if after >= 0:
                prev[after] = left
            push(prev[left], left)
            push(left, after)

        out: list[int] = []
        i = 0
        while i >= 0:
            found = mergeable.get(symbols[i])
            if found is not None:
                out.append(found[1])
            else:
                out.extend(self._fallback(symbols[i]))
            i = nxt[i]
        return out

    def _fallback(self, char: str) -> list[int]:
        """A character no piece covers: its UTF-8 bytes as byte tokens, else <unk>, else nothing."""
        ids = [self._byte_ids[b] for b in char.encode("utf-8", errors="surrogatepass")]
        if all(i >= 0 for i in ids):
            return ids
        return [] if self.unk_id is None else [self.unk_id]


def _piece_bytes(piece: str, kind: int) -> bytes:
    """What one token decodes to, by type (llama.cpp's token_to_piece with specials shown)."""
    if kind == TOKEN_BYTE:
        byte = _BYTE_PIECE.fullmatch(piece)
        return bytes([int(byte.group(1), 16)]) if byte else piece.encode("utf-8", errors="replace")
    if kind in _SPECIAL_TYPES:
        return piece.encode("utf-8", errors="replace")  # "<s>" shown as itself, as BPE's specials
    if kind == TOKEN_UNUSED:
        return b""
    return piece.replace(SPACE, " ").encode("utf-8", errors="replace")


def build_spm_tokenizer(
    name: str,
    pieces: Sequence[str],
    scores: Sequence[float],
    token_types: Sequence[int] | None = None,
    *,
    bos_id: Any = None,
    eos_id: Any = None,
    unk_id: Any = None,
    pad_id: Any = None,
    add_bos: bool = True,
    add_eos: bool = False,
    add_space_prefix: bool = True,
    chat_template: str | None = None,
    source: str = "This tokenizer",
) -> SentencePieceTokenizer:
    """Check a SentencePiece vocabulary and build its tokenizer.

    `token_types` None means every piece is normal (llama.cpp's reading of such a file).
    Special ids outside the vocabulary (a damaged file) become None instead of reaching the model.
    """
    pieces = list(pieces)
    if not pieces or not all(isinstance(p, str) for p in pieces):
        raise WeightsError(f"{source} has no SentencePiece vocabulary (tokenizer.ggml.tokens).", _FIX_DAMAGED)
    if scores is None or len(scores) != len(pieces):
        have = "no" if scores is None else str(len(scores))
        raise WeightsError(
            f"{source} has {have} SentencePiece scores (tokenizer.ggml.scores) for {len(pieces)} tokens.",
            _FIX_DAMAGED,
        )
    try:
        score_list = [float(s) for s in scores]
    except (TypeError, ValueError):
        raise WeightsError(f"{source} has SentencePiece scores that are not numbers.", _FIX_DAMAGED) from None
    if token_types is None:
        type_list = [TOKEN_NORMAL] * len(pieces)
    elif len(token_types) != len(pieces):
        raise WeightsError(f"{source} has {len(token_types)} token types for {len(pieces)} tokens.", _FIX_DAMAGED)
    else:
        try:
            type_list = [int(t) for t in token_types]
        except (TypeError, ValueError):
            raise WeightsError(f"{source} has token types that are not numbers.", _FIX_DAMAGED) from None

    def in_vocab(token_id: object) -> int | None:
        ok = isinstance(token_id, int) and not isinstance(token_id, bool) and 0 <= token_id < len(pieces)
        return token_id if ok else None

    tok = SentencePieceTokenizer(
        name=name,
        pieces=pieces,
        scores=score_list,
        token_types=type_list,
        bos_id=in_vocab(bos_id),
        eos_id=in_vocab(eos_id),
        unk_id=in_vocab(unk_id),
        pad_id=in_vocab(pad_id),
        add_bos=bool(add_bos) and in_vocab(bos_id) is not None,
        add_eos=bool(add_eos) and in_vocab(eos_id) is not None,
        add_space_prefix=bool(add_space_prefix),
        chat_template=chat_template if isinstance(chat_template, str) else None,
    )
    missing = tok._byte_ids.count(-1)
    if missing:
        tok.warning = (
            f"{missing} of the 256 byte tokens <0x00>..<0xFF> are missing: a character no piece covers "
            + ("becomes <unk>." if tok.unk_id is not None else "is dropped.")
        )
    return tok


def from_gguf_metadata(meta: Mapping[str, Any], name: str | None = None) -> SentencePieceTokenizer:
    """The tokenizer of a GGUF file whose `tokenizer.ggml.model` is "llama".

    `meta` holds the file's `tokenizer.ggml.*` values under the names `gguf_loader.tokenizer_meta`
    gives them: tokens, scores, token_types, bos_id, eos_id, unk_id, pad_id, add_bos_token,
    add_eos_token, add_space_prefix, chat_template, name. A key the file lacks takes llama.cpp's
    default for SentencePiece: bos 1, eos 2, unk 0, BOS added, no EOS, a space prefix.
    """
    name = name or meta.get("name")
    n = len(meta.get("tokens") or ())

    def special(key: str, default: int | None) -> int | None:
        value = meta.get(key)
        if value is None:
            return default if default is not None and default < n else None
        return value

    def flag(key: str, default: bool) -> bool:
        value = meta.get(key)
        return default if value is None else bool(value)

    return build_spm_tokenizer(
        name or "gguf",
        meta.get("tokens") or [],
        meta.get("scores"),
        meta.get("token_types") or None,
        bos_id=special("bos_id", 1),
        eos_id=special("eos_id", 2),
        unk_id=special("unk_id", 0),
        pad_id=special("pad_id", None),
        add_bos=flag("add_bos_token", True),
        add_eos=flag("add_eos_token", False),
        add_space_prefix=flag("add_space_prefix", True),
        chat_template=meta.get("chat_template"),
        source=f"The GGUF file {name}" if name else "The GGUF file",
    )
