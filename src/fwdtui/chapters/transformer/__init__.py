"""Section 1, Inside the Transformer: the forward pass of the loaded model, stage by stage."""

from fwdtui.chapters.transformer import journey  # noqa: F401  (registers the chapter)
