"""The experiments behind the embedding chapters: lookups, neighbours, analogies, contextual vectors,
pooled sentence vectors, retrieval and the unembedding. Numpy only.

Everything reads the loaded model's own weights (`wte.weight` / `embed_tokens.weight`,
`lm_head.weight` when untied) or runs it through `Model.forward` / `Model.trace` / `Model.logit_lens`;
nothing here re-implements the forward pass.
"""

from __future__ import annotations

import math
import re
import weakref
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from fwdtui.core.attention_lab import cosine, cosine_matrix

Progress = Callable[[float | None, str], None]
Cancelled = Callable[[], bool]


def _no_progress(fraction: float | None, message: str) -> None:
    pass


def _never() -> bool:
    return False


# --------------------------------------------------------------------------------------------
# The tables
# --------------------------------------------------------------------------------------------


def embedding_matrix(model) -> np.ndarray:
    """The input embedding table [n_vocab, n_embd] under the checkpoint's own name."""
    w = model.weights
    return w["wte.weight"] if "wte.weight" in w else w["embed_tokens.weight"]


def unembedding_matrix(model) -> tuple[np.ndarray, bool]:
    """The matrix the logits come from [n_vocab, n_embd], and whether it is the embedding table itself (tied)."""
    if "lm_head.weight" in model.weights:
        return model.weights["lm_head.weight"], False
    return embedding_matrix(model), True


def one_hot_lookup(table: np.ndarray, token_id: int) -> np.ndarray:
    """The lookup written as a matrix product: a one-hot row [n_vocab] @ table [n_vocab, n_embd]."""
    one_hot = np.zeros(table.shape[0], dtype=table.dtype)  # [n_vocab]
    one_hot[token_id] = 1.0
    return one_hot @ table  # [n_vocab] @ [n_vocab, n_embd] -> [n_embd]: every other row is multiplied by 0


def token_text(tokenizer, token_id: int) -> str | None:
    """The token's text, or None when its bytes are not whole UTF-8 characters."""
    try:
        return tokenizer.token_bytes(int(token_id)).decode("utf-8")
    except (UnicodeDecodeError, KeyError, IndexError, ValueError):
        return None


_WORD = re.compile(r"^ [A-Za-z]{2,}$")


def is_word_token(text: str | None) -> bool:
    """A whole word with its leading space (' Paris', ' blue'): readable neighbours, no word pieces."""
    return text is not None and bool(_WORD.match(text))


@dataclass(frozen=True)
class EmbeddingIndex:
    """What the embedding chapters reuse for one model (it does not depend on the prompt)."""

    texts: tuple[str | None, ...]  # [n_vocab] decoded token texts (None: part of a character)
    norms: np.ndarray  # [n_vocab] length of each embedding row
    candidates: np.ndarray  # ids neighbours are drawn from: whole words, or every printable token
    words_only: bool  # False when the vocabulary has too few whole-word tokens (a byte tokenizer)
    by_text: dict  # ' word' -> token id (single-token words only)


_INDEX_CACHE: "weakref.WeakKeyDictionary[object, EmbeddingIndex]" = weakref.WeakKeyDictionary()
MIN_WORDS = 50  # fewer whole-word tokens than this and the candidates fall back to every printable token


def embedding_index(model) -> EmbeddingIndex:
    """Build (once per model, then cached) the decoded vocabulary, row norms and whole-word ids."""
    cached = _INDEX_CACHE.get(model)
    if cached is not None:
        return cached
    table = embedding_matrix(model)
    n_vocab = min(table.shape[0], getattr(model.tokenizer, "n_vocab", table.shape[0]))
    texts = tuple(token_text(model.tokenizer, i) for i in range(n_vocab))
    norms = np.linalg.norm(table[:n_vocab].astype(np.float32), axis=1)  # [n_vocab]
    words = np.array([i for i, t in enumerate(texts) if is_word_token(t)], dtype=np.int64)
    words_only = len(words) >= MIN_WORDS
    if not words_only:  # e.g. a byte tokenizer: every printable token instead, never an empty list
        specials = set(getattr(model.tokenizer, "special_tokens", {}).values())  # <|endoftext|> is no word
        words = np.array([i for i, t in enumerate(texts) if t and t.isprintable() and i not in specials]
                         or list(range(n_vocab)), dtype=np.int64)
    by_text: dict[str, int] = {}
    for i, t in enumerate(texts):
        if t is not None and t not in by_text:
            by_text[t] = i
    index = EmbeddingIndex(texts, norms, words, words_only, by_text)
    _INDEX_CACHE[model] = index
    return index


def single_token(model, word: str) -> int | None:
    """The id of ' word' when the tokenizer writes it as one token, else None."""
    tok = model.tokenizer
    # A SentencePiece tokenizer puts the space in front of a text itself ("▁word"); give it the bare word.
    ids = tok.encode(word.strip() if getattr(tok, "add_space_prefix", False) else " " + word.strip())
    return int(ids[0]) if len(ids) == 1 else None


def _text(tok, ids) -> str:
    """Token(s) as text with their spaces (SentencePiece's decode drops a leading one): via the bytes."""
    return tok.decode_bytes([int(i) for i in ids]).decode("utf-8", errors="replace")


# --------------------------------------------------------------------------------------------
# Nearest neighbours and a 2-D map
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Neighbour:
    token_id: int
    text: str
    cosine: float


def nearest(model, vec: np.ndarray, k: int = 10, exclude: Sequence[int] = ()) -> list[Neighbour]:
    """The `k` candidate tokens whose input embeddings point most nearly the way `vec` points."""
    index = embedding_index(model)
    table = embedding_matrix(model)
    cand = index.candidates
    rows = table[cand]  # [n_cand, n_embd]
    sims = rows @ vec.astype(rows.dtype) / (index.norms[cand] * np.linalg.norm(vec) + 1e-12)  # [n_cand] cosines
    drop = np.isin(cand, np.asarray(list(exclude), dtype=np.int64))
    sims = np.where(drop, -np.inf, sims)
    k = min(k, int((~drop).sum()))
    top = np.argpartition(-sims, k - 1)[:k] if k > 0 else np.array([], dtype=np.int64)
    top = top[np.argsort(-sims[top])]
    return [Neighbour(int(cand[i]), index.texts[cand[i]] or "", float(sims[i])) for i in top]


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project rows onto their two main directions: ([n, 2] coordinates, [2] share of variance each)."""
    x = np.asarray(x, dtype=np.float64)
    centred = x - x.mean(axis=0, keepdims=True)  # PCA is about spread around the mean
    u, s, _ = np.linalg.svd(centred, full_matrices=False)  # centred = u @ diag(s) @ vt
    coords = u[:, :2] * s[:2]  # [n, 2] the same as centred @ vt[:2].T
    var = s**2
    share = var[:2] / (var.sum() + 1e-12)
    if coords.shape[1] < 2:  # a single row or column: pad so callers always get two columns
        coords = np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
        share = np.pad(share, (0, 2 - share.shape[0]))
    return coords, share


# Groups of words for the map: single-token words the model knows are kept, the others dropped.
MAP_GROUPS: dict[str, tuple[str, ...]] = {
    "numbers": ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"),
    "days": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "countries": ("France", "Germany", "Italy", "Spain", "China", "Japan", "India", "Brazil", "Canada", "Egypt"),
    "colours": ("red", "blue", "green", "yellow", "purple", "orange", "black", "white", "pink", "brown"),
    "animals": ("dog", "cat", "horse", "cow", "lion", "tiger", "mouse", "bird", "fish", "sheep"),
}


@dataclass(frozen=True)
class WordMap:
    words: tuple[str, ...]
    groups: tuple[str, ...]  # the group of each word
    coords: np.ndarray  # [n, 2] PCA coordinates
    share: np.ndarray  # [2] variance explained by each axis
    missing: tuple[str, ...]  # words that are not one token in this vocabulary


def word_map(model, groups: dict[str, tuple[str, ...]] = MAP_GROUPS) -> WordMap:
    """Input embeddings of grouped words projected to 2-D with PCA (numpy SVD)."""
    table = embedding_matrix(model)
    words, labels, ids, missing = [], [], [], []
    for group, members in groups.items():
        for word in members:
            tid = single_token(model, word)
            if tid is None:
                missing.append(word)
                continue
            words.append(word)
            labels.append(group)
            ids.append(tid)
    if len(ids) < 3:  # too few words (a byte tokenizer): map single characters instead, honestly labelled
        words, labels = list("abcdefghij0123456789"), ["letters"] * 10 + ["digits"] * 10
        ids = [model.tokenizer.encode(w)[0] for w in words]
    coords, share = pca_2d(table[np.asarray(ids)])
    return WordMap(tuple(words), tuple(labels), coords, share, tuple(missing))


# --------------------------------------------------------------------------------------------
# Analogies
# --------------------------------------------------------------------------------------------

# a : b :: c : expected, solved as b - a + c ("king - man + woman")
ANALOGIES: tuple[tuple[str, str, str, str], ...] = (
    ("man", "king", "woman", "queen"),
    ("France", "Paris", "Italy", "Rome"),
    ("good", "better", "bad", "worse"),
    ("brother", "sister", "father", "mother"),
    ("walk", "walking", "swim", "swimming"),
    ("one", "two", "three", "four"),
)


@dataclass(frozen=True)
class AnalogyResult:
    words: tuple[str, str, str, str]  # a, b, c, expected
    missing: tuple[str, ...]  # words that are not one token: the analogy cannot be asked
    top: tuple[Neighbour, ...]  # best answers, the three input words excluded
    expected_cos: float  # cosine of the expected answer with b - a + c
    expected_rank: int  # 1 = the model solves it; 0 when it could not be asked
    n_candidates: int
    unit: bool  # the vectors were scaled to length 1 before the arithmetic
    c_cos: float  # cosine of c itself with the target: the usual "nearest is just c" effect
    c_rank: int  # c's rank among the candidates, inputs included (where it would be without exclusion)


def analogy(model, words: tuple[str, str, str, str], k: int = 8, unit: bool = True) -> AnalogyResult:
    """Solve a : b :: c : ? as the nearest whole-word token to b - a + c, and score the expected word."""
    ids = [single_token(model, w) for w in words]
    missing = tuple(w for w, i in zip(words, ids) if i is None)
    index = embedding_index(model)
    if missing:
        return AnalogyResult(words, missing, (), 0.0, 0, len(index.candidates), unit, 0.0, 0)
    table = embedding_matrix(model).astype(np.float64)
    a, b, c, want = (table[i] for i in ids)
    if unit:  # 3CosAdd on unit vectors: no word counts more just because its vector is longer
        a, b, c = (v / (np.linalg.norm(v) + 1e-12) for v in (a, b, c))
    target = b - a + c  # [n_embd]
    top = nearest(model, target, k, exclude=ids[:3])
    cand = index.candidates
    sims = embedding_matrix(model)[cand] @ target / (index.norms[cand] * np.linalg.norm(target) + 1e-12)
    inputs = np.isin(cand, np.asarray(ids[:3]))
    want_cos = cosine(want, target)
    # rank = 1 + how many other non-input words beat it (the word itself left out: float32 rounding)
    expected_rank = int((sims[~inputs & (cand != ids[3])] > want_cos).sum()) + 1
    c_cos = cosine(table[ids[2]], target)
    c_rank = int((sims[cand != ids[2]] > c_cos).sum()) + 1  # where c would be if inputs were not excluded
    return AnalogyResult(words, (), tuple(top), want_cos, expected_rank, len(cand), unit, c_cos, c_rank)


# --------------------------------------------------------------------------------------------
# The same word in two contexts
# --------------------------------------------------------------------------------------------

# (word, text A, text B): the word inside two texts that give it different meanings
CONTEXT_SETS: tuple[tuple[str, str, str], ...] = (
    ("bank", "We sat on the grassy bank of the river and watched the boats", "She went to the bank to pay in her salary"),
    ("bat", "The vampire bat flew out of the dark cave", "He hit the ball hard with his cricket bat"),
    ("spring", "The flowers bloom every spring in the valley", "A metal spring inside the pen pushes it back"),
    ("light", "Turn on the light, the room is dark", "The box was light enough to carry with one hand"),
)


def word_position(tokenizer, text: str, word: str) -> int:
    """Index of the last token of the first ' word' (or 'word') in `text`; -1 means the last token."""
    ids = tokenizer.encode(text)
    for pattern in (" " + word, word):
        at = text.find(pattern)
        if at < 0:
            continue
        prefix = tokenizer.encode(text[: at + len(pattern)])
        if prefix and ids[: len(prefix)] == prefix:  # the prefix is tokenized the same way inside the text
            return len(prefix) - 1
    return len(ids) - 1


@dataclass(frozen=True)
class ContextResult:
    word: str
    text_a: str
    text_b: str
    pos_a: int
    pos_b: int
    token_a: str
    token_b: str
    cos: np.ndarray  # [n_layer + 1] cosine of the two residual vectors: after the embedding, then each block
    lens_a: tuple[str, ...]  # [n_layer + 1] the logit lens's top token for occurrence A at each depth
    lens_b: tuple[str, ...]
    neutral_cos: np.ndarray  # [n_layer + 1] the same, between A and the word in a third, unrelated text


def residual_rows(trace, position: int, n_layer: int) -> np.ndarray:
    """[n_layer + 1, n_embd] the residual stream at one position: into block 0, then out of each block."""
    rows = [trace["blocks.0.resid_pre"][position]]
    rows += [trace[f"blocks.{i}.resid_post"][position] for i in range(n_layer)]
    return np.stack(rows)


def context_compare(model, word: str, text_a: str, text_b: str, text_n: str | None = None,
                    progress: Progress = _no_progress) -> ContextResult:
    """Trace both texts and follow the word's vector through every layer in each."""
    tok = model.tokenizer
    n_layer = model.config.n_layer
    pos_a, pos_b = word_position(tok, text_a, word), word_position(tok, text_b, word)
    progress(0.1, f"tracing text A ({word})")
    ta = model.trace(tok.encode(text_a))
    progress(0.45, "tracing text B")
    tb = model.trace(tok.encode(text_b))
    ra, rb = residual_rows(ta, pos_a, n_layer), residual_rows(tb, pos_b, n_layer)
    cos = np.array([cosine(x, y) for x, y in zip(ra, rb)])
    lens = []
    for trace, pos in ((ta, pos_a), (tb, pos_b)):
        top = model.logit_lens(trace, pos).argmax(axis=-1)  # [n_layer + 1] best guess of the next token
        lens.append(tuple(_text(tok, [t]) for t in top))
    neutral = np.full(n_layer + 1, np.nan)
    if text_n:
        progress(0.8, "tracing the neutral text")
        tn = model.trace(tok.encode(text_n))
        rn = residual_rows(tn, word_position(tok, text_n, word), n_layer)
        neutral = np.array([cosine(x, y) for x, y in zip(ra, rn)])
    ids_a, ids_b = tok.encode(text_a), tok.encode(text_b)
    return ContextResult(word, text_a, text_b, pos_a, pos_b, _text(tok, [ids_a[pos_a]]), _text(tok, [ids_b[pos_b]]),
                         cos, lens[0], lens[1], neutral)


# --------------------------------------------------------------------------------------------
# Sentence vectors and retrieval
# --------------------------------------------------------------------------------------------


def pool(hidden: np.ndarray, how: str = "mean") -> np.ndarray:
    """[n_seq, n_embd] -> [n_embd]: the mean over tokens, or the last token's vector."""
    if how == "last":
        return hidden[-1]  # in a causal model only the last token has seen the whole text
    return hidden.mean(axis=0)


def hidden_states(model, text: str) -> np.ndarray:
    """[n_seq, n_embd] the last layer's output after the final norm (what libraries call last_hidden_state)."""
    ids = model.tokenizer.encode(text)[: model.config.n_ctx]
    if not ids:
        ids = model.tokenizer.encode(" ")
    _, trace = model.forward(ids, trace=True)
    return trace["ln_final.out"]


_HIDDEN_CACHE: "weakref.WeakKeyDictionary[object, dict[str, np.ndarray]]" = weakref.WeakKeyDictionary()


def cached_hidden_states(model, text: str) -> np.ndarray:
    """`hidden_states`, remembered per model and text: the fixed sentences and documents are computed once."""
    per_model = _HIDDEN_CACHE.setdefault(model, {})
    if text not in per_model:
        per_model[text] = hidden_states(model, text)
    return per_model[text]


def embed_texts(model, texts: Sequence[str], how: str = "mean", progress: Progress = _no_progress,
                cancelled: Cancelled = _never, what: str = "text") -> np.ndarray | None:
    """[n_texts, n_embd] one pooled vector per text, one forward pass each; None when cancelled."""
    out = []
    for i, text in enumerate(texts):
        if cancelled():
            return None
        progress(i / max(1, len(texts)), f"embedding {what} {i + 1} of {len(texts)}")
        out.append(pool(cached_hidden_states(model, text), how))
    return np.stack(out)


def centred(x: np.ndarray) -> np.ndarray:
    """Rows minus their mean: removes the direction every hidden state shares, so cosines spread out."""
    return x - x.mean(axis=0, keepdims=True)


# Sentences for the sentence-embedding chapter: two pairs that mean nearly the same, and an outsider.
SENTENCES: tuple[str, ...] = (
    "The cat sat quietly on the mat.",
    "A kitten was resting on the rug.",
    "Stock prices fell sharply this morning.",
    "Investors sold shares as the market dropped.",
    "How do I bake bread at home?",
)

# Our own short passages on varied topics: the document set of the retrieval chapter.
DOCUMENTS: tuple[tuple[str, str], ...] = (
    ("volcanoes", "A volcano erupts when molten rock from deep underground pushes up through the crust and spills out as lava and ash."),
    ("bread", "To bake bread, mix flour, water, salt and yeast, let the dough rise for a few hours, then bake it in a hot oven."),
    ("bees", "Honey bees collect nectar from flowers and turn it into honey, which they store in wax cells inside the hive."),
    ("chess", "In chess each player starts with sixteen pieces, and the game ends when one king is trapped in checkmate."),
    ("tides", "Ocean tides rise and fall twice a day because the moon's gravity pulls on the water of the seas."),
    ("python", "Python is a programming language known for readable code; lists, dictionaries and functions are its daily tools."),
    ("marathon", "A marathon is a running race of about forty-two kilometres, and runners train for months to finish it."),
    ("vaccines", "A vaccine teaches the immune system to recognise a germ, so the body can fight it off quickly later."),
    ("guitar", "A guitar usually has six strings; pressing them against the frets changes the pitch of each note."),
    ("rainbows", "A rainbow appears when sunlight is bent and reflected inside raindrops, splitting white light into colours."),
    ("coffee", "Coffee beans are the roasted seeds of a cherry-like fruit, and roasting them longer gives a darker, bitter taste."),
    ("trains", "High-speed trains run on dedicated tracks and can travel at more than three hundred kilometres per hour."),
    ("photosynthesis", "Plants use sunlight, water and carbon dioxide to make sugar in their leaves, releasing oxygen into the air."),
    ("savings", "Putting a little money into a savings account every month lets interest add up over the years."),
    ("penguins", "Penguins are birds that cannot fly; they swim fast in cold southern seas and hunt fish and krill."),
)

# Questions with the passage that answers them: how we score the two rankings honestly.
QUESTIONS: tuple[tuple[str, str], ...] = (
    ("Why does the sea level go up and down every day?", "tides"),
    ("How do I make a loaf at home?", "bread"),
    ("Which birds swim but never fly?", "penguins"),
    ("What makes the colours in the sky after rain?", "rainbows"),
    ("How does a jab protect you from an illness?", "vaccines"),
    ("How far do you run in a marathon?", "marathon"),
)

RAG_TEMPLATE = "Use the passage to answer the question.\nPassage: {passage}\nQuestion: {question}\nAnswer:"


def words_of(text: str) -> list[str]:
    """Lower-case word list for the bag-of-words baseline."""
    return re.findall(r"[a-z0-9]+", text.lower())


def tfidf_vectors(docs: Sequence[str], queries: Sequence[str] = ()) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """TF-IDF rows for `docs` and `queries` over the documents' vocabulary: ([n_docs, V], [n_q, V], vocab)."""
    doc_words = [words_of(d) for d in docs]
    vocab = sorted({w for ws in doc_words for w in ws})
    col = {w: j for j, w in enumerate(vocab)}
    df = Counter(w for ws in doc_words for w in set(ws))
    # a word found in every document tells documents apart not at all: its idf is log(1) = 0
    idf = np.array([math.log((1 + len(docs)) / (1 + df[w])) for w in vocab])

    def rows(texts: Sequence[str]) -> np.ndarray:
        m = np.zeros((len(texts), len(vocab)))
        for i, text in enumerate(texts):
            for w, n in Counter(words_of(text)).items():
                if w in col:
                    m[i, col[w]] = n
        return m * idf  # [n, V] term counts weighted by rarity

    return rows(docs), rows(queries), vocab


def rank(query: np.ndarray, docs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Documents ordered by cosine with the query: (order [n_docs], cosines [n_docs] in document order)."""
    q = query / (np.linalg.norm(query) + 1e-12)
    d = docs / (np.linalg.norm(docs, axis=1, keepdims=True) + 1e-12)
    sims = d @ q  # [n_docs]
    return np.argsort(-sims, kind="stable"), sims


def rag_prompt(passage: str, question: str, template: str = RAG_TEMPLATE) -> str:
    """The retrieved passage placed into the prompt the model would then answer."""
    return template.format(passage=passage, question=question)


# --------------------------------------------------------------------------------------------
# The unembedding
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnembedResult:
    position: int
    resid: np.ndarray  # [n_embd] the residual stream out of the last block
    normed: np.ndarray  # [n_embd] after the model's final norm
    logits: np.ndarray  # [n_vocab] normed @ U.T
    top: tuple[int, ...]  # best token ids
    dots: np.ndarray  # [k] U[top] . normed, one dot product per token
    trace_diff: float  # largest |our logits - the trace's logits| at this position
    tied: bool
    without_norm_top: tuple[int, ...]  # what the bare residual (no final norm) would rank first


def unembed_position(model, trace, position: int = -1, k: int = 8) -> UnembedResult:
    """The last residual vector through the final norm and the unembedding, and each top logit as one dot product."""
    n_layer = model.config.n_layer
    resid = trace[f"blocks.{n_layer - 1}.resid_post"][position]  # [n_embd]
    normed = model.final_norm(resid[None, :])[0]  # [n_embd]
    logits = model.unembed(normed[None, :])[0]  # [n_vocab]
    u, tied = unembedding_matrix(model)
    top = np.argsort(-logits, kind="stable")[:k]
    dots = u[top] @ normed  # [k, n_embd] @ [n_embd] -> [k]: each logit is one row of U dotted with the vector
    diff = float(np.max(np.abs(logits - trace["logits"][position])))
    bare = np.argsort(-model.unembed(resid[None, :])[0], kind="stable")[:k]
    pos = position if position >= 0 else trace["logits"].shape[0] + position
    return UnembedResult(pos, resid, normed, logits, tuple(int(t) for t in top), dots, diff, tied,
                         tuple(int(t) for t in bare))


__all__ = [
    "ANALOGIES", "AnalogyResult", "CONTEXT_SETS", "ContextResult", "DOCUMENTS", "EmbeddingIndex", "MAP_GROUPS",
    "Neighbour", "QUESTIONS", "RAG_TEMPLATE", "SENTENCES", "UnembedResult", "WordMap", "analogy", "centred", "context_compare",
    "cached_hidden_states", "cosine", "cosine_matrix", "embed_texts", "embedding_index", "embedding_matrix", "hidden_states",
    "is_word_token", "nearest", "one_hot_lookup", "pca_2d", "pool", "rag_prompt", "rank", "residual_rows",
    "single_token", "tfidf_vectors", "token_text", "unembed_position", "unembedding_matrix", "word_map",
    "word_position", "words_of",
]
