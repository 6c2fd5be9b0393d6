"""Section 4, Tokenizer Training: how a vocabulary is built from raw bytes, next to real tokenizers."""

from fwdtui.chapters.tokenizer import bpe  # noqa: F401
from fwdtui.chapters.tokenizer import merge_rules  # noqa: F401
from fwdtui.chapters.tokenizer import byte_level  # noqa: F401
from fwdtui.chapters.tokenizer import vocab_size  # noqa: F401
from fwdtui.chapters.tokenizer import special_tokens  # noqa: F401
from fwdtui.chapters.tokenizer import compare_view  # noqa: F401
