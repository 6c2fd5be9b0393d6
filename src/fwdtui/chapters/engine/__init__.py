"""Section 8, the inference engine: what makes generation fast, measured on the loaded model."""

from fwdtui.chapters.engine import (  # noqa: F401  (importing registers each chapter)
    batching,
    flash_attention,
    kv_cache,
    paged_attention,
    prefill_decode,
    prefix_caching,
    roofline,
    sampling,
    serving,
    speculative,
)
