"""Section 7, quantization: storing the loaded model's weights in fewer bits and measuring what it costs."""

from fwdtui.chapters.quantization import (  # noqa: F401  (importing registers each chapter)
    awq,
    bitsandbytes,
    damage,
    formats,
    gguf,
    gptq,
    tradeoffs,
)
