"""Retrieval (RAG): rank a small document set against a query with the loaded model's pooled vectors,
against a TF-IDF baseline, and put the best passage into a prompt."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding

from fwdtui.chapters.base import Chapter, register
from fwdtui.chapters.embeddings._common import Picture, dim, keys_line, para
from fwdtui.core import embedding_lab
from fwdtui.session import Snapshot
from fwdtui.widgets.palette import ACCENT

DOC_NAMES = tuple(name for name, _ in embedding_lab.DOCUMENTS)
DOC_TEXTS = tuple(text for _, text in embedding_lab.DOCUMENTS)


@dataclass(frozen=True)
class RetrievalResult:
    query: str
    expected: str | None  # the passage that answers a preset question; None for the prompt
    query_hidden: np.ndarray  # [n_seq, n_embd]
    doc_hidden: tuple[np.ndarray, ...]  # per document [n_seq_i, n_embd]
    question_hidden: tuple[np.ndarray, ...]  # per preset question, for the scoreboard


@dataclass(frozen=True)
class Rankings:
    model_order: np.ndarray  # [n_docs] best first
    model_sims: np.ndarray  # [n_docs] in document order
    tfidf_order: np.ndarray
    tfidf_sims: np.ndarray
    model_hits: int  # preset questions whose right passage each method ranks first
    tfidf_hits: int


def rankings(r: RetrievalResult, how: str, centre: bool) -> Rankings:
    """Both rankings for the query, and how often each puts the right passage first over the preset questions."""
    docs = np.stack([embedding_lab.pool(h, how) for h in r.doc_hidden])  # [n_docs, n_embd]
    query = embedding_lab.pool(r.query_hidden, how)
    questions = np.stack([embedding_lab.pool(h, how) for h in r.question_hidden])
    if centre:  # subtract the documents' mean: the direction every hidden state shares says nothing about topic
        mean = docs.mean(axis=0)
        docs, query, questions = docs - mean, query - mean, questions - mean
    model_order, model_sims = embedding_lab.rank(query, docs)
    tf_docs, tf_queries, _ = embedding_lab.tfidf_vectors(DOC_TEXTS, [r.query] + [q for q, _ in embedding_lab.QUESTIONS])
    tfidf_order, tfidf_sims = embedding_lab.rank(tf_queries[0], tf_docs)
    model_hits = tfidf_hits = 0
    for k, (_, answer) in enumerate(embedding_lab.QUESTIONS):
        model_hits += DOC_NAMES[embedding_lab.rank(questions[k], docs)[0][0]] == answer
        tf_best = embedding_lab.rank(tf_queries[k + 1], tf_docs)
        tfidf_hits += DOC_NAMES[tf_best[0][0]] == answer and tf_best[1].max() > 0
    return Rankings(model_order, model_sims, tfidf_order, tfidf_sims, int(model_hits), int(tfidf_hits))


@register
class RetrievalChapter(Picture, Chapter):
    ID = "embeddings.retrieval"
    PICTURE = "retrieval"
    SECTION = "embeddings"
    TITLE = "Retrieval"
    SUMMARY = "RAG on a small document set: rank passages with the model's vectors and with TF-IDF."
    EXPLANATION = """
**Retrieval-augmented generation** looks up text before answering: embed every passage once, embed
the question, take the passages whose vectors are closest (cosine), and paste them into the prompt.
Here the fifteen short passages were written for this course and embedded with the loaded model
(mean of its last hidden states, minus the passages' mean vector, `z`). Beside it, a **TF-IDF** baseline: words counted, rare words
weighted up, no neural network at all. The scoreboard runs six test questions through both, so you
can see which one ranks better on this model, not just on one query.
"""
    CODE_FUNCTIONS = (embedding_lab.embed_texts, embedding_lab.rank, embedding_lab.tfidf_vectors,
                      embedding_lab.rag_prompt)

    BINDINGS = [
        Binding("n", "next_query(1)", "Question", tooltip="Use the next test question instead of your prompt"),
        Binding("N", "next_query(-1)", "Prev question", show=False, tooltip="The previous test question"),
        Binding("o", "toggle_pool", "Mean/last", show=False, tooltip="Pool by the mean of all tokens or the last token"),
        Binding("z", "toggle_centre", "Centre", show=False, tooltip="Subtract the documents' mean vector, or not"),
    ]

    def __init__(self, session=None) -> None:
        super().__init__(session)
        self.query_index = 0  # 0: the prompt; k: preset question k - 1
        self.how = "mean"
        self.centre = True

    def compose_visual(self) -> ComposeResult:
        yield from self.picture_area(focusable=True)

    def compute(self, snapshot: Snapshot) -> RetrievalResult | None:
        model = snapshot.require_model()
        if self.query_index == 0:
            query, expected = snapshot.prompt, None
        else:
            query, expected = embedding_lab.QUESTIONS[self.query_index - 1]
        texts = DOC_TEXTS + tuple(q for q, _ in embedding_lab.QUESTIONS) + (query,)
        hidden = []
        for i, text in enumerate(texts):
            if snapshot.cancelled():
                return None
            what = "passage" if i < len(DOC_TEXTS) else "question"
            snapshot.progress(i / len(texts), f"embedding {what} {i + 1} of {len(texts)} (once per model)")
            hidden.append(embedding_lab.cached_hidden_states(model, text))
        n_docs = len(DOC_TEXTS)
        return RetrievalResult(query, expected, hidden[-1], tuple(hidden[:n_docs]), tuple(hidden[n_docs:-1]))

    def action_next_query(self, delta: int) -> None:
        self.query_index = (self.query_index + delta) % (len(embedding_lab.QUESTIONS) + 1)
        self.recompute()

    def action_toggle_pool(self) -> None:
        self.how = "last" if self.how == "mean" else "mean"
        self.redraw()

    def action_toggle_centre(self) -> None:
        self.centre = not self.centre
        self.redraw()

    def draw(self, result: RetrievalResult | None) -> None:
        if result is None:
            return
        who = "your prompt" if result.expected is None else f"question {self.query_index}"
        self.update_breadcrumb(f"query: {who}")
        ranks = rankings(result, self.how, self.centre)
        self.picture_canvas().show(lambda width: self._picture(result, ranks, width))

    def _top(self, title: str, order: np.ndarray, sims: np.ndarray, expected: str | None, width: int) -> Text:
        out = Text(title + "\n", style="bold")
        for rank, d in enumerate(order[:3]):
            name = DOC_NAMES[d]
            right = expected == name
            out.append(f" {rank + 1}. {sims[d]:+.3f} ", style=f"bold {ACCENT}" if right else "")
            out.append(f"{name:<15}", style=f"bold {ACCENT}" if right else "bold")
            room = max(10, width - 28)
            text = DOC_TEXTS[d]
            out.append_text(dim((text if len(text) <= room else text[: room - 1] + "…") + "\n"))
        if expected is not None and expected not in [DOC_NAMES[d] for d in order[:3]]:
            at = [DOC_NAMES[d] for d in order].index(expected) + 1
            out.append_text(dim(f"    the right passage ({expected}) is #{at}\n"))
        return out

    def _picture(self, r: RetrievalResult, k: Rankings, width: int) -> Text:
        out = Text(no_wrap=True, overflow="crop")
        query = Text("query: ", style="bold")
        q = r.query if len(r.query) <= width - 10 else r.query[: width - 11] + "…"
        query.append(q, style=ACCENT)
        out.append_text(query)
        out.append("\n")
        pooling = f"{r'mean' if self.how == 'mean' else 'last token'}{', centred' if self.centre else ''}"
        out.append_text(self._top(f"model vectors ({pooling})", k.model_order, k.model_sims, r.expected, width))
        out.append_text(self._top("TF-IDF (word counts)", k.tfidf_order, k.tfidf_sims, r.expected, width))
        if r.expected is None and k.tfidf_sims.max() <= 0:
            out.append_text(dim("    (TF-IDF: no word of the query occurs in any passage, every score is 0)\n"))
        n_q = len(embedding_lab.QUESTIONS)
        board = Text("scoreboard", style="bold")
        board.append(f" (right passage first, {n_q} test questions): ")
        board.append(f"model {k.model_hits}/{n_q} · TF-IDF {k.tfidf_hits}/{n_q}\n", style="bold")
        out.append_text(board)
        if k.model_hits > k.tfidf_hits:
            verdict = "Here the model's vectors rank better than word counts, though far from perfectly."
        elif k.model_hits < k.tfidf_hits:
            verdict = "Here plain word counts beat the model's vectors: it was not trained to embed text."
        else:
            verdict = "Here both rank equally well: neither is reliable on questions worded unlike the passage."
        out.append_text(para(verdict + " Dedicated embedding models are trained on question-passage pairs.",
                             width, style="italic"))
        out.append_text(keys_line("n test questions · o mean/last · z centre on/off"))
        best = DOC_TEXTS[k.model_order[0]]
        out.append("\nThe prompt the model would then answer:\n", style="bold")
        for line in embedding_lab.rag_prompt(best, r.query).split("\n"):
            out.append_text(para(line, width))
        return out
