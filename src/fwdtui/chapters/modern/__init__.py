"""Section 6, modern techniques: mixture of experts, reasoning, tool use, multimodal inputs, long context."""

from fwdtui.chapters.modern import long_context, moe, multimodal, reasoning, tool_use  # noqa: F401  (importing registers each chapter)
