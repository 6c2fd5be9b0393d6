"""Training and fine-tuning numbers: per-token loss, a tiny byte bigram model trained with hand-written
gradients, loss masks, sequence log-probabilities, the DPO loss, rule-based rewards and GRPO advantages."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from fwdtui.core.ops import log_softmax
from fwdtui.core.sampling import SamplingSettings, sample

# --- the pre-training objective on the loaded model -------------------------------------------------


def token_losses(model, ids: Sequence[int]) -> np.ndarray:
    """-log p(actual next token) for every position that has a next token: [n_seq - 1] float64."""
    ids = list(ids)
    if len(ids) < 2:
        return np.zeros(0)
    logp = log_softmax(model.logits(ids).astype(np.float64))  # [n_seq, n_vocab]
    nxt = np.asarray(ids[1:])
    return -logp[np.arange(len(ids) - 1), nxt]  # row i predicts token i+1


def perplexity(losses: np.ndarray, mask: np.ndarray | None = None) -> tuple[float, float]:
    """(mean loss, perplexity = e^mean) over the positions the mask keeps (all when None)."""
    losses = np.asarray(losses, dtype=np.float64)
    keep = np.ones(losses.shape, bool) if mask is None else np.asarray(mask, bool)
    if not keep.any():
        return float("nan"), float("nan")
    mean = float(losses[keep].mean())
    return mean, float(math.exp(min(mean, 700.0)))


# --- a tiny language model trained live: bytes -> next byte ---------------------------------------


@dataclass
class BigramLM:
    """The smallest language model: one table of logits W[prev byte, next byte] (256 x 256)."""

    W: np.ndarray  # [256, 256] logits
    m: np.ndarray = field(default=None)  # type: ignore[assignment]  # Adam first moment
    v: np.ndarray = field(default=None)  # type: ignore[assignment]  # Adam second moment
    t: int = 0  # Adam steps taken

    @staticmethod
    def new(seed: int = 0) -> "BigramLM":
        rng = np.random.default_rng(seed)
        W = rng.normal(0.0, 0.01, (256, 256))  # near zero: every byte about equally likely (loss ≈ ln 256)
        return BigramLM(W, np.zeros_like(W), np.zeros_like(W), 0)


def bigram_loss_and_grad(W: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of predicting bytes y from bytes x, and its gradient with respect to W.

    x, y: [n] ints. The gradient of -log softmax(z)[y] with respect to z is softmax(z) - onehot(y);
    each row W[x_i] is the z of example i, so its gradient adds into that row.
    """
    z = W[x]  # [n, 256]
    logp = log_softmax(z)  # [n, 256]
    n = x.size
    loss = float(-logp[np.arange(n), y].mean())
    dz = np.exp(logp)  # softmax
    dz[np.arange(n), y] -= 1.0
    dz /= n  # the mean over examples
    dW = np.zeros_like(W)
    np.add.at(dW, x, dz)  # scatter-add: the same byte can appear many times
    return loss, dW


def adam_step(lm: BigramLM, grad: np.ndarray, lr: float = 0.1, b1: float = 0.9, b2: float = 0.999,
              eps: float = 1e-8) -> None:
    """One Adam update in place: momentum (m) plus a per-weight step size from the gradient's scale (v)."""
    lm.t += 1
    lm.m = b1 * lm.m + (1 - b1) * grad
    lm.v = b2 * lm.v + (1 - b2) * grad * grad
    m_hat = lm.m / (1 - b1 ** lm.t)  # bias correction: m and v start at zero
    v_hat = lm.v / (1 - b2 ** lm.t)
    lm.W -= lr * m_hat / (np.sqrt(v_hat) + eps)


def text_bytes(text: str) -> np.ndarray:
    """UTF-8 bytes of a text as ints [n]."""
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64)


def train_bigram(text: str, steps: int = 200, batch: int = 256, lr: float = 0.1, seed: int = 0,
                 on_step: Callable[[int, float], None] | None = None,
                 cancelled: Callable[[], bool] | None = None) -> tuple[BigramLM, list[float]]:
    """Train a BigramLM on random byte pairs of `text` with Adam; the loss of every step, in order."""
    data = text_bytes(text)
    if data.size < 2:
        raise ValueError("the training text needs at least two bytes")
    rng = np.random.default_rng(seed)
    lm = BigramLM.new(seed)
    losses: list[float] = []
    for step in range(steps):
        if cancelled is not None and cancelled():
            break
        at = rng.integers(0, data.size - 1, size=batch)  # a minibatch of positions
        loss, grad = bigram_loss_and_grad(lm.W, data[at], data[at + 1])
        adam_step(lm, grad, lr)
        losses.append(loss)
        if on_step is not None:
            on_step(step, loss)
    return lm, losses


def bigram_sample(W: np.ndarray, start: str, n: int, seed: int = 0, temperature: float = 1.0) -> str:
    """Generate n bytes after `start` from the bigram table (bad UTF-8 shown as �)."""
    rng = np.random.default_rng(seed)
    out = list(start.encode("utf-8")) or [32]
    for _ in range(n):
        token, _ = sample(W[out[-1]], SamplingSettings(temperature=temperature), rng)
        out.append(token)
    return bytes(out).decode("utf-8", errors="replace")


# --- supervised fine-tuning: which tokens count -------------------------------------------------------


def assistant_mask(n_prompt: int, n_total: int) -> np.ndarray:
    """Loss mask over the n_total - 1 predictions: True where the predicted token is an assistant token."""
    # prediction i is of token i+1; assistant tokens are positions n_prompt .. n_total-1
    return np.arange(1, n_total) >= n_prompt


# --- preferences: sequence log-probabilities and DPO ---------------------------------------------------


def sequence_logprob(model, prompt_ids: Sequence[int], answer_ids: Sequence[int]) -> float:
    """log p(answer | prompt) = the sum of the answer tokens' log-probabilities under the model."""
    ids = list(prompt_ids) + list(answer_ids)
    losses = token_losses(model, ids)
    return float(-losses[len(prompt_ids) - 1:].sum())  # predictions of the answer tokens only


def log_sigmoid(x: float) -> float:
    """log(1 / (1 + e^-x)) without overflow for large |x|."""
    return -float(np.logaddexp(0.0, -x))


def dpo_loss(pi_chosen: float, pi_rejected: float, ref_chosen: float, ref_rejected: float,
             beta: float = 0.1) -> tuple[float, float]:
    """The DPO loss -log σ(β·[(π_c - ref_c) - (π_r - ref_r)]) and the margin inside the brackets."""
    margin = (pi_chosen - ref_chosen) - (pi_rejected - ref_rejected)
    return -log_sigmoid(beta * margin), margin


# --- GRPO: rule-based rewards and group-relative advantages ------------------------------------------


def first_number(text: str) -> float | None:
    """The first number written in a text (digits, optional sign and decimals), or None."""
    found = re.search(r"-?\d+(?:\.\d+)?", text.replace(",", ""))
    return float(found.group()) if found else None


def answer_reward(text: str, expected: float) -> float:
    """1 if the first number in the answer is the expected one, 0.5 if it comes later, 0.1 for other
    numbers only, 0 for no number: a rule a program checks, no reward model."""
    numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", text.replace(",", ""))]
    if not numbers:
        return 0.0
    if abs(numbers[0] - expected) < 1e-9:
        return 1.0
    return 0.5 if any(abs(n - expected) < 1e-9 for n in numbers) else 0.1


def group_advantages(rewards: Sequence[float], eps: float = 1e-6) -> np.ndarray:
    """(reward - group mean) / group std: above-average answers get pushed up, the others down.

    A group where every answer scored the same gives all zeros: nothing to learn from it.
    """
    r = np.asarray(rewards, dtype=np.float64)
    if r.size == 0:
        return r
    std = r.std()
    return (r - r.mean()) / (std + eps) if std > eps else np.zeros_like(r)


def sample_group(model, ids: Sequence[int], group: int, max_new: int = 24, temperature: float = 0.8,
                 seed: int = 0, stops: Sequence[int] = (),
                 on_sample: Callable[[int], None] | None = None,
                 cancelled: Callable[[], bool] | None = None) -> list[list[int]]:
    """`group` seeded samples of at most max_new tokens each (stop tokens are dropped, not kept)."""
    answers: list[list[int]] = []
    for g in range(group):
        if cancelled is not None and cancelled():
            break
        out: list[int] = []
        for token in model.generate(list(ids), max_new, temperature=temperature, seed=seed + g):
            if token in stops or token == model.config.eos_token_id:
                break
            out.append(int(token))
            if cancelled is not None and cancelled():
                break
        answers.append(out)
        if on_sample is not None:
            on_sample(g)
    return answers


# --- RLHF: the KL penalty ----------------------------------------------------------------------------


def kl_penalised_reward(reward: float, logp_policy: float, logp_ref: float, beta: float) -> float:
    """The RLHF objective per sample: reward - β·(log π(y) - log π_ref(y)), the KL estimate on that sample."""
    return reward - beta * (logp_policy - logp_ref)


def tidiness_reward(text: str) -> float:
    """A hand-written stand-in for a learned reward model: distinct words / words (repetition costs), plus
    0.5 when the answer ends a sentence; in [0, 1.5]."""
    words = text.lower().split()
    if not words:
        return 0.0
    return len(set(words)) / len(words) + (0.5 if text.rstrip().endswith((".", "!", "?")) else 0.0)


def tempered_logprob(model, prompt_ids: Sequence[int], answer_ids: Sequence[int], temperature: float) -> float:
    """log p(answer | prompt) under the model's distribution at a temperature (1.0: the model itself)."""
    ids = list(prompt_ids) + list(answer_ids)
    logits = model.logits(ids).astype(np.float64) / temperature  # [n_seq, n_vocab]
    logp = log_softmax(logits)
    rows = np.arange(len(prompt_ids) - 1, len(ids) - 1)  # the rows that predict the answer tokens
    return float(logp[rows, np.asarray(answer_ids)].sum())
