"""The forward pass as plain text, stage by stage, read off a Trace: for logs, pipes and slow links."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from fwdtui.core.model import Model
from fwdtui.core.trace import Trace


def _shape(a: np.ndarray) -> str:
    return "[" + ", ".join(str(d) for d in a.shape) + "]"


def _vec(v: np.ndarray, n: int = 4) -> str:
    head = ", ".join(f"{x:+.3f}" for x in v[:n])
    return f"[{head}, ...] norm {np.linalg.norm(v):.2f}"


def piece(model: Model, token: int) -> str:
    """A token's text as it would print, with partial UTF-8 shown as byte escapes."""
    if model.tokenizer is None or not 0 <= token < model.tokenizer.n_vocab:
        return f"<id {token}>"
    raw = model.tokenizer.token_bytes(token)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "".join(f"\\x{b:02x}" for b in raw) + " (part of a character)"
    return repr(text)  # quoted, so leading spaces and newlines are visible


def step_lines(model: Model, ids: list[int], trace: Trace, top: int = 5) -> Iterator[str]:
    """Yield the lines of the step-through for `ids` (the last position is the one predicted from)."""
    cfg = model.config
    n = len(ids)
    yield f"model      {model.info.name}: {cfg.family} family, {cfg.n_layer} layers, d_model {cfg.n_embd}, " \
          f"{cfg.n_head} heads ({cfg.n_kv_head} key/value), vocab {cfg.vocab_size}, context {cfg.n_ctx}"
    yield "           decoder-only: each position sees itself and earlier positions (causal mask)"
    yield ""
    yield f"1 tokens   {n} tokens"
    for i, t in enumerate(ids[:32]):
        yield f"           {i:>4}  id {t:>6}  {piece(model, t)}"
    if n > 32:
        yield f"           ... {n - 32} more"
    emb = trace["embed"]
    yield f"2 embed    token embeddings: table[ids] {_shape(emb)}; last token {_vec(emb[-1])}"
    if cfg.family == "gpt2":
        pos = trace["pos_embed"]
        yield f"3 position learned position embeddings wpe[0..{n - 1}] {_shape(pos)} added to the tokens"
    else:
        yield f"3 position rotary (RoPE, theta {cfg.rope_theta:g}): q and k are rotated by position inside attention;" \
              " nothing is added to the residual stream"
    for layer in range(cfg.n_layer):
        t = trace.layer(layer)
        pat = t["attn.pattern"][:, -1]  # [n_head, n_k]: where the last token looks, per head
        best = [f"h{h}->{int(np.argmax(pat[h]))}" for h in range(min(pat.shape[0], 6))]
        yield f"4 block {layer:<3} norm {_shape(t['ln1.out'])} -> attention q {_shape(t['attn.q'])} " \
              f"pattern {_shape(t['attn.pattern'])}; last token attends most to: {' '.join(best)}" \
              + (" ..." if pat.shape[0] > 6 else "")
        yield f"           + residual: |x| {np.linalg.norm(t['resid_pre'][-1]):.1f} -> {np.linalg.norm(t['resid_mid'][-1]):.1f};" \
              f" MLP {_shape(t['mlp.pre'])} ({(t['mlp.post'][-1] > 0).mean() * 100:.0f}% of units positive)" \
              f" -> |x| {np.linalg.norm(t['resid_post'][-1]):.1f}"
    yield f"5 norm     final norm {_shape(trace['ln_final.out'])}"
    logits = trace["logits"][-1]
    probs = trace["probs"][-1]
    yield f"6 logits   unembedding -> {_shape(trace['logits'])}; last row min {logits.min():.2f} max {logits.max():.2f}"
    order = np.argsort(-probs)[:top]
    yield f"7 softmax  top {top} next tokens after {piece(model, ids[-1])!s}:"
    for rank, t in enumerate(order, 1):
        yield f"           {rank}. {piece(model, int(t)):<20} p={probs[t]:.4f}  logit {logits[t]:.2f}"
    yield f"8 sample   greedy (temperature 0) picks {piece(model, int(order[0]))} (id {int(order[0])})"
