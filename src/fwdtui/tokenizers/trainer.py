"""A byte-level BPE trainer of our own: regex chunks, incremental merge counts, encode/decode.

Training starts from the 256 byte tokens and, merge after merge, joins the adjacent pair of
tokens seen most often in the training text. The text is first cut into chunks by a split
pattern (GPT-2's or GPT-4's), merges never cross a chunk boundary, and training runs on the
table of unique chunks and their counts rather than on the raw text.

Worked example (the one on Wikipedia's "Byte pair encoding" page, here on bytes 97='a', 98='b'):

>>> tok = train("aaabdaaabac", vocab_size=259)
>>> [(step.pair, step.new_id, step.count, step.token) for step in tok.history]
[((97, 97), 256, 4, b'aa'), ((97, 98), 257, 2, b'ab'), ((256, 257), 258, 2, b'aaab')]
>>> tok.encode("aaabdaaabac")
[258, 100, 258, 97, 99]
>>> tok.decode([258, 100])
'aaabd'

"aa" occurs 4 times (overlapping runs count each position, as in minbpe). After the first merge,
(97, 98) "ab" and (256, 97) "aa"+"a" both occur twice: ties go to the pair with the lowest ids,
so "ab" wins.
"""

from __future__ import annotations

import heapq
import itertools
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import regex

from fwdtui.errors import ConfigError, PromptError, WeightsError
from fwdtui.tokenizers.gpt2 import ENDOFTEXT, GPT2_PATTERN

# GPT-2's split pattern (2019) is the gpt2 module's; the trainer's name for it stays for its callers.
GPT2_SPLIT_PATTERN = GPT2_PATTERN
# GPT-4's (cl100k) split pattern: contractions in any case, a letter run may take one leading
# non-letter (not only a space), digits go in groups of at most three, and line breaks stay
# with the symbols before them.
GPT4_SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*"""
    r"""|\s*[\r\n]|\s+(?!\S)|\s+"""
)

FORMAT_NAME = "fwdtui-bpe"
FORMAT_VERSION = 1

Pair = tuple[int, int]


# --------------------------------------------------------------------------- small helpers


def get_stats(
    words: Iterable[Sequence[int]], freqs: Iterable[int] | None = None
) -> dict[Pair, int]:
    """Count adjacent pairs over words (each weighted by its freq); overlapping pairs all count."""
    stats: dict[Pair, int] = {}
    if freqs is None:
        freqs = itertools.repeat(1)  # every word once
    for word, freq in zip(words, freqs):
        for pair in zip(word, word[1:]):
            stats[pair] = stats.get(pair, 0) + freq
    return stats


def merge(ids: Sequence[int], pair: Pair, new_id: int) -> list[int]:
    """Replace every occurrence of `pair` in `ids` by `new_id`, scanning left to right."""
    a, b = pair
    out: list[int] = []
    i, n = 0, len(ids)
    while i < n:
        # "aaa" with pair (a, a) gives [aa, a]: an occurrence never reuses a merged token
        if i + 1 < n and ids[i] == a and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def split_text(text: str, pattern: str = GPT4_SPLIT_PATTERN) -> list[str]:
    """Cut text into the chunks that BPE merges within (never across)."""
    return regex.findall(pattern, text)


def utf8(text: str) -> bytes:
    """UTF-8 bytes of text; lone surrogates (from broken files) become U+FFFD as in tiktoken."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode("utf-8")


def _special_regex(special_tokens: Iterable[str]) -> regex.Pattern | None:
    """An alternation of the special strings, longest first so no prefix shadows a longer one."""
    specials = sorted(special_tokens, key=len, reverse=True)
    if not specials:
        return None
    return regex.compile("(" + "|".join(regex.escape(s) for s in specials) + ")")


def count_chunks(
    text: str, pattern: str = GPT4_SPLIT_PATTERN, special_tokens: Iterable[str] = ()
) -> Counter[bytes]:
    """The unique chunk -> count table that training runs on (special strings are left out)."""
    counts: Counter[bytes] = Counter()
    special_re = _special_regex(special_tokens)
    # a special token is a document boundary, not text to learn merges from
    pieces = [text] if special_re is None else special_re.split(text)[::2]
    compiled = regex.compile(pattern)
    for piece in pieces:
        counts.update(compiled.findall(piece))
    table: Counter[bytes] = Counter()
    for chunk, n in counts.items():
        table[utf8(chunk)] += n  # += : two broken chunks may both become U+FFFD
    return table


# --------------------------------------------------------------------------- training


@dataclass(frozen=True)
class MergeStep:
    """One merge learned in training: what a UI shows when it steps merge by merge."""

    rank: int  # 0 for the first merge learned
    pair: Pair  # the two token ids joined
    new_id: int  # the id of the joined token (256 + rank when trained here)
    count: int  # occurrences of the pair in the training text when it was chosen
    token: bytes  # the joined token's bytes


class BPETrainer:
    """Learns merges one at a time, updating pair counts only in the chunks a merge touched.

    State: each unique chunk as a list of token ids (`words`) with its count in the text
    (`freqs`); `pair_counts[pair]` = occurrences of the pair over the whole text; `where[pair]`
    = ids of the chunks that may contain the pair (a superset: chunks are not removed when a
    pair leaves them, they are just found empty of it later); a max-heap of (-count, a, b)
    with stale entries skipped on pop, so picking the best pair costs O(log n), not a scan.

    Tie-break: the highest count wins; among equal counts the lowest pair (a, b) wins, comparing
    `a` first, then `b`. `train_naive` uses the same rule, so both learn identical merges.
    """

    def __init__(self, chunk_counts: Mapping[bytes, int]) -> None:
        self.words: list[list[int]] = [list(chunk) for chunk in chunk_counts]
        self.freqs: list[int] = [int(n) for n in chunk_counts.values()]
        self.vocab: dict[int, bytes] = {i: bytes([i]) for i in range(256)}
        self.history: list[MergeStep] = []
        self.pair_counts: dict[Pair, int] = get_stats(self.words, self.freqs)
        self.where: dict[Pair, set[int]] = {}
        for w_id, word in enumerate(self.words):
            for pair in zip(word, word[1:]):
                self.where.setdefault(pair, set()).add(w_id)
        self._heap: list[tuple[int, int, int]] = [
            (-count, a, b) for (a, b), count in self.pair_counts.items()
        ]
        heapq.heapify(self._heap)

    @classmethod
    def from_text(
        cls, text: str, pattern: str = GPT4_SPLIT_PATTERN, special_tokens: Iterable[str] = ()
    ) -> BPETrainer:
        """A trainer on the chunks of `text` (special-token strings are left out of training)."""
        return cls(count_chunks(text, pattern, special_tokens))

    def _best_pair(self) -> tuple[Pair, int] | None:
        """The most frequent pair (lowest ids on ties), dropping heap entries that went stale."""
        heap, counts = self._heap, self.pair_counts
        while heap:
            neg_count, a, b = heap[0]
            if counts.get((a, b)) == -neg_count:
                return (a, b), -neg_count
            heapq.heappop(heap)  # its count changed since it was pushed: a newer entry exists
        return None

    def merge_next(self) -> MergeStep | None:
        """Learn one merge and apply it to every chunk that contains it; None when none is left."""
        best = self._best_pair()
        if best is None:
            return None
        pair, count = best
        a, b = pair
        new_id = 256 + len(self.history)
        self.vocab[new_id] = self.vocab[a] + self.vocab[b]

        # Net change of each pair count over all touched chunks. Per occurrence a b replaced by
        # X (= new_id), with `prev` the token now left of it and `nxt` the old token right of it:
        #   (a, b) -1, (prev, a) -1, (prev, X) +1, (b, nxt) -1, (X, nxt) +1.
        # Taking `prev` from the new word makes back-to-back occurrences right: in "abab" the
        # (X, a) added by the first is removed by the second, which adds (X, X).
        delta: dict[Pair, int] = {}
        where, words, freqs = self.where, self.words, self.freqs
        for w_id in where.pop(pair):
            word = words[w_id]
            if len(word) < 2:
                continue
            freq = freqs[w_id]
            out: list[int] = []
            i, n = 0, len(word)
            while i < n:
                if i + 1 < n and word[i] == a and word[i + 1] == b:
                    delta[pair] = delta.get(pair, 0) - freq
                    if out:
                        prev = out[-1]
                        delta[(prev, a)] = delta.get((prev, a), 0) - freq
                        delta[(prev, new_id)] = delta.get((prev, new_id), 0) + freq
                        where.setdefault((prev, new_id), set()).add(w_id)
                    if i + 2 < n:
                        nxt = word[i + 2]
                        delta[(b, nxt)] = delta.get((b, nxt), 0) - freq
                        delta[(new_id, nxt)] = delta.get((new_id, nxt), 0) + freq
                        where.setdefault((new_id, nxt), set()).add(w_id)
                    out.append(new_id)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            if len(out) != n:  # the chunk held the pair (the index may be stale)
                words[w_id] = out

        counts, heap = self.pair_counts, self._heap
        for p, d in delta.items():
            if d == 0:
                continue
            c = counts.get(p, 0) + d
            if c > 0:
                counts[p] = c
                heapq.heappush(heap, (-c, p[0], p[1]))
            else:
                counts.pop(p, None)
        step = MergeStep(len(self.history), pair, new_id, count, self.vocab[new_id])
        self.history.append(step)
        return step

    def steps(self) -> Iterator[MergeStep]:
        """Yield one MergeStep per merge until no chunk has two tokens left (stop when you like)."""
        while (step := self.merge_next()) is not None:
            yield step


def naive_steps(chunk_counts: Mapping[bytes, int]) -> Iterator[MergeStep]:
    """Reference trainer, minbpe-style: recount every pair in every chunk after each merge."""
    words = [list(chunk) for chunk in chunk_counts]
    freqs = [int(n) for n in chunk_counts.values()]
    vocab = {i: bytes([i]) for i in range(256)}
    rank = 0
    while True:
        stats = get_stats(words, freqs)
        if not stats:
            return
        pair = min(stats, key=lambda p: (-stats[p], p))  # highest count, then lowest ids
        new_id = 256 + rank
        vocab[new_id] = vocab[pair[0]] + vocab[pair[1]]
        words = [merge(word, pair, new_id) for word in words]
        yield MergeStep(rank, pair, new_id, stats[pair], vocab[new_id])
        rank += 1


def _check_vocab_size(vocab_size: int) -> int:
    """The number of merges a vocab size asks for (byte tokens count, special tokens do not)."""
    if vocab_size < 256:
        raise ConfigError(
            f"vocab_size {vocab_size} is smaller than the 256 byte tokens",
            "Pick a vocab size of at least 256 (256 = bytes only, each extra id is one merge).",
        )
    return vocab_size - 256


def _run(
    steps_of: Callable[[Mapping[bytes, int]], Iterator[MergeStep]],
    text: str,
    vocab_size: int,
    pattern: str,
    special_tokens: Iterable[str] | Mapping[str, int] | None,
    progress: Callable[[int, int], None] | None,
    should_stop: Callable[[], bool] | None,
    name: str,
) -> TrainedTokenizer:
    """Count the chunks of `text`, drive `steps_of(chunk table)` up to vocab_size - 256 merges,
    reporting progress, and wrap the result (both trainers below share everything but the steps)."""
    n_merges = _check_vocab_size(vocab_size)
    if special_tokens is not None and not isinstance(special_tokens, Mapping):
        special_tokens = list(special_tokens)  # read twice below: no one-shot iterators
    steps = steps_of(count_chunks(text, pattern, list(special_tokens or ())))
    history: list[MergeStep] = []
    while len(history) < n_merges:
        if should_stop is not None and should_stop():
            break
        step = next(steps, None)
        if step is None:  # every chunk is a single token: nothing left to merge
            break
        history.append(step)
        if progress is not None:
            progress(len(history), n_merges)
    first_special = 256 + len(history)
    if special_tokens is None:
        specials: dict[str, int] = {}
    elif isinstance(special_tokens, Mapping):
        specials = dict(special_tokens)
    else:
        specials = {s: first_special + i for i, s in enumerate(special_tokens)}
    return TrainedTokenizer(
        merges={step.pair: step.new_id for step in history},
        pattern=pattern,
        special_tokens=specials,
        history=history,
        name=name,
    )


def train(
    text: str,
    vocab_size: int,
    pattern: str = GPT4_SPLIT_PATTERN,
    special_tokens: Iterable[str] | Mapping[str, int] | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainedTokenizer:
    """Learn vocab_size - 256 merges on text; special tokens get the ids after the last merge.

    `progress(done, total)` is called after each merge; `should_stop()` is asked before each
    and, when true, ends training early with the merges learned so far. Training also ends
    early when every chunk has become a single token.
    """
    return _run(lambda chunks: BPETrainer(chunks).steps(), text, vocab_size, pattern, special_tokens,
                progress, should_stop, name=f"bpe-{vocab_size} (trained)")


def train_naive(
    text: str,
    vocab_size: int,
    pattern: str = GPT4_SPLIT_PATTERN,
    special_tokens: Iterable[str] | Mapping[str, int] | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainedTokenizer:
    """Same result as `train`, by the slow road: a full recount of pairs after every merge."""
    return _run(naive_steps, text, vocab_size, pattern, special_tokens, progress, should_stop,
                name=f"bpe-{vocab_size} (trained, naive)")


# --------------------------------------------------------------------------- the tokenizer


@dataclass(frozen=True)
class EncodeStep:
    """The text's tokens after one merge rank was applied (rank None: the raw bytes)."""

    rank: int | None
    pair: Pair | None
    new_id: int | None
    n_merged: int  # occurrences replaced at this rank, over the whole text
    chunks: tuple[tuple[int, ...], ...]  # the ids of each chunk; merges stay inside a chunk

    @property
    def ids(self) -> list[int]:
        """All ids of the text at this step, chunks joined."""
        return [i for chunk in self.chunks for i in chunk]


_INF = float("inf")


@dataclass
class TrainedTokenizer:
    """Encode/decode with a list of merges; follows the tokenizer contract of fwdtui.tokenizers.

    `merges` maps a pair to the id of the joined token; its order is the rank order (earliest
    learned first), which is the order encode applies merges in. `byte_ids[b]` is the id of
    the single byte b: 0..255 when trained here, a permutation for GPT-2's own files.
    """

    merges: dict[Pair, int] = field(repr=False)
    pattern: str = GPT4_SPLIT_PATTERN
    special_tokens: dict[str, int] = field(default_factory=dict)
    history: list[MergeStep] = field(default_factory=list, repr=False)
    name: str = "bpe (trained)"
    byte_ids: tuple[int, ...] = field(default=tuple(range(256)), repr=False)
    chat_template: str | None = None

    def __post_init__(self) -> None:
        self.byte_ids = tuple(int(i) for i in self.byte_ids)
        if len(self.byte_ids) != 256 or len(set(self.byte_ids)) != 256:
            raise ValueError("byte_ids must give 256 distinct ids, one per byte value")
        self.vocab: dict[int, bytes] = {i: bytes([b]) for b, i in enumerate(self.byte_ids)}
        self.ranks: dict[Pair, int] = {}
        for rank, ((a, b), new_id) in enumerate(self.merges.items()):
            if a not in self.vocab or b not in self.vocab:
                raise ValueError(f"merge {rank} joins ({a}, {b}) before both ids exist")
            if new_id in self.vocab:
                raise ValueError(f"merge {rank} reuses id {new_id}")
            self.vocab[new_id] = self.vocab[a] + self.vocab[b]
            self.ranks[(a, b)] = rank
        for text, i in self.special_tokens.items():
            if i in self.vocab or list(self.special_tokens.values()).count(i) > 1:
                raise ValueError(f"special token {text!r} reuses id {i}")
        self._split_re = regex.compile(self.pattern)
        self._special_re = _special_regex(self.special_tokens)
        self._special_by_id = {i: s for s, i in self.special_tokens.items()}
        self._cache: dict[bytes, tuple[int, ...]] = {}

    # -- the tokenizer contract

    @property
    def n_vocab(self) -> int:
        """One past the largest id (ordinary or special)."""
        return max([*self.vocab, *self._special_by_id]) + 1

    @property
    def eos_id(self) -> int | None:
        """<|endoftext|> when it is one of the special tokens."""
        return self.special_tokens.get(ENDOFTEXT)

    @property
    def bos_id(self) -> int | None:
        """GPT-2 style: the same <|endoftext|> token starts and ends documents."""
        return self.special_tokens.get(ENDOFTEXT)

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes a token stands for (a special token's text, UTF-8 encoded)."""
        if token_id in self.vocab:
            return self.vocab[token_id]
        if token_id in self._special_by_id:
            return self._special_by_id[token_id].encode("utf-8")
        raise PromptError(
            f"token id {token_id} is not in the vocabulary of {self.name}",
            f"Use ids from 0 to {self.n_vocab - 1}.",
        )

    def encode_chunk(self, chunk: bytes) -> tuple[int, ...]:
        """BPE on one chunk: repeatedly join the adjacent pair that was learned earliest."""
        cached = self._cache.get(chunk)
        if cached is not None:
            return cached
        ranks, merges = self.ranks, self.merges
        ids = [self.byte_ids[b] for b in chunk]
        while len(ids) >= 2:
            pair = min(zip(ids, ids[1:]), key=lambda p: ranks.get(p, _INF))
            if pair not in ranks:
                break  # no adjacent pair was ever learned: done
            ids = merge(ids, pair, merges[pair])
        out = tuple(ids)
        if len(self._cache) > 100_000:  # a long session must not grow the cache forever
            self._cache.clear()
        self._cache[chunk] = out
        return out

    def encode(self, text: str) -> list[int]:
        """Text to ids; special-token strings typed by a user stay plain text."""
        ids: list[int] = []
        for chunk in self._split_re.findall(text):
            ids.extend(self.encode_chunk(utf8(chunk)))
        return ids

    def encode_with_special(self, text: str) -> list[int]:
        """Text to ids, turning special-token strings into their ids (for chat templates)."""
        if self._special_re is None:
            return self.encode(text)
        ids: list[int] = []
        # split() with one capture group alternates: ordinary text, special, ordinary, ...
        for k, piece in enumerate(self._special_re.split(text)):
            if k % 2:
                ids.append(self.special_tokens[piece])
            elif piece:
                ids.extend(self.encode(piece))
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Ids to text; bytes that are not valid UTF-8 on their own become U+FFFD."""
        return b"".join(self.token_bytes(int(i)) for i in ids).decode("utf-8", errors="replace")

    # -- for the "merge rules" chapter

    def encode_steps(self, text: str) -> Iterator[EncodeStep]:
        """Yield the text's tokens first as bytes, then after each merge rank that applies.

        Ranks are applied in order over the whole text at once; ranks whose pair does not occur
        are skipped. The last step's ids equal `encode(text)`.
        """
        chunks = [
            [self.byte_ids[b] for b in utf8(chunk)]
            for chunk in self._split_re.findall(text)
        ]
        yield EncodeStep(None, None, None, 0, tuple(tuple(c) for c in chunks))
        while True:
            present = {p for c in chunks for p in zip(c, c[1:]) if p in self.ranks}
            if not present:
                return
            pair = min(present, key=self.ranks.__getitem__)
            new_id = self.merges[pair]
            n_merged = 0
            for k, chunk in enumerate(chunks):
                merged = merge(chunk, pair, new_id)
                n_merged += len(chunk) - len(merged)
                chunks[k] = merged
            yield EncodeStep(self.ranks[pair], pair, new_id, n_merged,
                             tuple(tuple(c) for c in chunks))

    # -- building from other tokenizers' tables

    def mergeable_ranks(self) -> dict[bytes, int]:
        """tiktoken's view of this vocabulary: token bytes -> id (ids double as ranks)."""
        return {token: i for i, token in self.vocab.items()}

    @classmethod
    def from_mergeable_ranks(
        cls,
        ranks: Mapping[bytes, int],
        pattern: str = GPT4_SPLIT_PATTERN,
        special_tokens: Mapping[str, int] | None = None,
        name: str = "bpe (from ranks)",
    ) -> TrainedTokenizer:
        """Recover the merges behind a tiktoken-style table (token bytes -> rank = id).

        A token of rank r is what BPE makes of its own bytes using only tokens ranked below r;
        that leaves exactly two parts, and those two are the merge that made it.
        """
        try:
            byte_ids = tuple(ranks[bytes([b])] for b in range(256))
        except KeyError as err:
            missing = err.args[0]
            raise ValueError(f"the table has no token for the single byte {missing!r}") from None
        merges: dict[Pair, int] = {}
        for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
            if len(token) < 2:
                continue
            parts = _bpe_by_ranks(ranks, token, max_rank=rank)
            if len(parts) != 2:
                raise ValueError(f"token {token!r} (rank {rank}) is not one merge of lower ranks")
            merges[(ranks[parts[0]], ranks[parts[1]])] = rank
        return cls(merges=merges, pattern=pattern, special_tokens=dict(special_tokens or {}),
                   name=name, byte_ids=byte_ids)

    # -- files

    def save(self, path: str | Path) -> None:
        """Write a JSON file: pattern, byte ids, merges in rank order, training counts."""
        data = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "name": self.name,
            "pattern": self.pattern,
            "byte_ids": list(self.byte_ids),
            "merges": [[a, b, new_id] for (a, b), new_id in self.merges.items()],
            # counts let a UI replay training after a reload; absent for recovered tables
            "counts": [step.count for step in self.history] if self.history else None,
            "special_tokens": self.special_tokens,
            "chat_template": self.chat_template,
        }
        Path(path).write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n",
                              encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> TrainedTokenizer:
        """Read a file written by `save`; anything else raises WeightsError naming the fix."""
        path = Path(path)
        fix = "Train the tokenizer again and save it, or choose a file written by fwdtui's save."
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise WeightsError(f"no tokenizer file at {path}", fix) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise WeightsError(f"{path} is not a readable tokenizer file ({err})", fix) from None
        if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
            raise WeightsError(f"{path} is not a {FORMAT_NAME} tokenizer file", fix)
        if data.get("version") != FORMAT_VERSION:
            raise WeightsError(
                f"{path} has format version {data.get('version')!r}; this fwdtui reads "
                f"version {FORMAT_VERSION}", fix)
        try:
            merges = {(int(a), int(b)): int(new_id) for a, b, new_id in data["merges"]}
            if len(merges) != len(data["merges"]):
                raise ValueError("a pair is merged twice")
            specials = {str(s): int(i) for s, i in data["special_tokens"].items()}
            tok = cls(merges=merges, pattern=str(data["pattern"]), special_tokens=specials,
                      name=str(data["name"]), byte_ids=tuple(data["byte_ids"]),
                      chat_template=data.get("chat_template"))
            counts = data.get("counts")
            if counts is not None:
                if len(counts) != len(merges):
                    raise ValueError("counts and merges differ in length")
                tok.history = [
                    MergeStep(rank, pair, new_id, int(count), tok.vocab[new_id])
                    for rank, ((pair, new_id), count) in enumerate(zip(merges.items(), counts))
                ]
        except (KeyError, TypeError, ValueError, AttributeError, regex.error) as err:
            raise WeightsError(f"{path} is a damaged tokenizer file ({err})", fix) from None
        return tok


def _bpe_by_ranks(ranks: Mapping[bytes, int], token: bytes, max_rank: int) -> list[bytes]:
    """tiktoken's rule: join the adjacent parts whose union ranks lowest, while below max_rank."""
    parts = [bytes([b]) for b in token]
    while len(parts) > 1:
        best_i, best_rank = -1, max_rank
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1])
            if r is not None and r < best_rank:
                best_i, best_rank = i, r
        if best_i < 0:
            break
        parts[best_i : best_i + 2] = [parts[best_i] + parts[best_i + 1]]
    return parts
