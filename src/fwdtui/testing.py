"""Tiny seeded random models with a byte tokenizer: for tests, screenshots and offline demos."""

from __future__ import annotations

import numpy as np

from fwdtui.core.config import ModelConfig
from fwdtui.core.model import Model, ModelInfo
from fwdtui.loaders.hf_folder import expected_shapes

EOT = "<|endoftext|>"


class ByteTokenizer:
    """One token per UTF-8 byte (ids 0-255) plus <|endoftext|> (256): the simplest honest tokenizer."""

    name = "bytes"
    n_vocab = 257
    chat_template = None

    def __init__(self) -> None:
        self.special_tokens = {EOT: 256}
        self.bos_id = None
        self.eos_id = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8", errors="surrogatepass"))

    def encode_with_special(self, text: str) -> list[int]:
        out: list[int] = []
        for i, part in enumerate(text.split(EOT)):
            if i:
                out.append(256)
            out += self.encode(part)
        return out

    def token_bytes(self, token: int) -> bytes:
        return EOT.encode() if token == 256 else bytes([token])

    def decode_bytes(self, ids: list[int]) -> bytes:
        return b"".join(self.token_bytes(int(t)) for t in ids)

    def decode(self, ids: list[int]) -> str:
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def pre_tokenize(self, text: str) -> list[str]:
        return [text] if text else []


def random_config(family: str = "gpt2", n_layer: int = 2, n_embd: int = 32, n_head: int = 4,
                  n_kv_head: int | None = None, n_ctx: int = 128) -> ModelConfig:
    """A small config of either family over the 257-token byte vocabulary."""
    if family == "gpt2":
        return ModelConfig(family="gpt2", model_type="gpt2", n_layer=n_layer, n_embd=n_embd, n_head=n_head,
                           n_kv_head=n_head, head_dim=n_embd // n_head, n_inner=4 * n_embd, n_ctx=n_ctx,
                           vocab_size=257, norm_eps=1e-5, attn_bias=True, attn_out_bias=True, mlp_bias=True,
                           eos_token_id=256)
    return ModelConfig(family="llama", model_type="llama", n_layer=n_layer, n_embd=n_embd, n_head=n_head,
                       n_kv_head=n_kv_head or max(1, n_head // 2), head_dim=n_embd // n_head, n_inner=3 * n_embd,
                       n_ctx=n_ctx, vocab_size=257, norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=False,
                       eos_token_id=256)


def random_model(family: str = "gpt2", seed: int = 0, **shape) -> Model:
    """A seeded random model: the same numbers on every machine, so tests can pin what the screen shows."""
    cfg = random_config(family, **shape)
    rng = np.random.default_rng(seed)
    weights: dict[str, np.ndarray] = {}
    for name, dims in expected_shapes(cfg).items():
        if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight", "layernorm.weight", "norm.weight")):
            weights[name] = (1.0 + 0.1 * rng.standard_normal(dims)).astype(np.float32)
        else:
            scale = 0.02 if name.endswith("bias") else 0.3 / np.sqrt(dims[-1] if len(dims) > 1 else 1)
            weights[name] = (scale * rng.standard_normal(dims)).astype(np.float32)
    # Embeddings carry most of a tiny model's signal; make them big enough for visible patterns.
    for name in ("wte.weight", "embed_tokens.weight"):
        if name in weights:
            weights[name] *= 4.0
    return Model(cfg, weights, ByteTokenizer(), ModelInfo(name=f"random-{family}", source="random (seed {})".format(seed)))


TINY_MERGES = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("Ġ", "a"), ("e", "r"), ("o", "n"), ("Ġ", "c"),
               ("a", "t"), ("Ġc", "at")]


def write_tiny_model_folder(folder, family: str = "gpt2", seed: int = 0, n_ctx: int = 64) -> None:
    """Write a complete Hugging Face layout folder (config.json, model.safetensors, vocab.json,
    merges.txt) for a tiny random model with a real byte-level BPE tokenizer of 256 bytes + 10 merges
    + <|endoftext|>: what the CLI and loaders are tested on."""
    import json
    from pathlib import Path

    from safetensors.numpy import save_file

    from fwdtui.tokenizers.gpt2 import bytes_to_unicode

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    b2u = bytes_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    for a, b in TINY_MERGES:
        vocab[a + b] = len(vocab)
    vocab[EOT] = len(vocab)
    n_vocab = len(vocab)  # 267
    rng = np.random.default_rng(seed)
    if family == "gpt2":
        config = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_layer": 2, "n_embd": 32, "n_head": 4,
                  "n_positions": n_ctx, "vocab_size": n_vocab, "layer_norm_epsilon": 1e-5,
                  "bos_token_id": n_vocab - 1, "eos_token_id": n_vocab - 1}
    else:
        config = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "num_hidden_layers": 2, "hidden_size": 32,
                  "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 64,
                  "max_position_embeddings": n_ctx, "vocab_size": n_vocab, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
                  "tie_word_embeddings": True, "bos_token_id": n_vocab - 1, "eos_token_id": n_vocab - 1}
    cfg = ModelConfig.from_hf(config)
    tensors = {}
    for name, dims in expected_shapes(cfg).items():
        tensors[("transformer." if family == "gpt2" else "model.") + name] = (0.2 * rng.standard_normal(dims)).astype(np.float32)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in TINY_MERGES) + "\n")
