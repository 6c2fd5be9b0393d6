"""Section 3, embeddings: seven chapters on the loaded model's vectors."""

from fwdtui.chapters.embeddings import (  # noqa: F401  (importing registers each chapter)
    analogies,
    contextual,
    lookup,
    neighbours,
    retrieval,
    sentence,
    unembedding,
)
