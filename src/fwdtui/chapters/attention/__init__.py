"""Section 2, the attention mechanism: eight chapters computed on the loaded model."""

from fwdtui.chapters.attention import (  # noqa: F401  (importing registers each chapter)
    gqa,
    hybrid,
    mla,
    multi_head,
    positional_encoding,
    scaled_dot_product,
    sparse,
    why,
)
