"""Tests for the training lab: per-token loss, hand-written gradients, masks, DPO, rewards, advantages."""

from __future__ import annotations

import math

import numpy as np

from fwdtui.core import training_lab as tl
from fwdtui.core.ops import log_softmax
from fwdtui.testing import random_model
from fwdtui.tokenizers.corpus import sample_text


def test_token_losses_match_log_softmax_of_the_next_token() -> None:
    model = random_model("gpt2", seed=0)
    ids = model.tokenizer.encode("the cat sat")
    losses = tl.token_losses(model, ids)
    assert losses.shape == (len(ids) - 1,)
    logp = log_softmax(model.logits(ids).astype(np.float64))
    assert math.isclose(losses[3], -logp[3, ids[4]], rel_tol=1e-9)
    mean, ppl = tl.perplexity(losses)
    assert math.isclose(ppl, math.exp(losses.mean()), rel_tol=1e-9) and mean > 0


def test_bigram_gradient_matches_finite_differences() -> None:
    rng = np.random.default_rng(1)
    W = rng.normal(0, 0.5, (256, 256))
    x, y = rng.integers(0, 256, 20), rng.integers(0, 256, 20)
    x[:5] = 7  # repeated rows: the gradient must add up
    _, grad = tl.bigram_loss_and_grad(W, x, y)
    for (i, j) in [(7, int(y[0])), (7, 3), (int(x[10]), int(y[10])), (200, 9)]:
        h = 1e-5
        Wp, Wm = W.copy(), W.copy()
        Wp[i, j] += h
        Wm[i, j] -= h
        numeric = (tl.bigram_loss_and_grad(Wp, x, y)[0] - tl.bigram_loss_and_grad(Wm, x, y)[0]) / (2 * h)
        assert abs(numeric - grad[i, j]) < 1e-7


def test_training_lowers_the_loss_and_can_be_cancelled() -> None:
    lm, losses = tl.train_bigram(sample_text(), steps=60, seed=0)
    assert abs(losses[0] - math.log(256)) < 0.1  # untrained: about uniform
    assert np.mean(losses[-10:]) < losses[0] - 1.5
    text = tl.bigram_sample(lm.W, "th", 20, seed=0)
    assert text.startswith("th") and len(text.encode("utf-8", "replace")) >= 2
    _, short = tl.train_bigram(sample_text(), steps=60, cancelled=lambda: True)
    assert short == []


def test_assistant_mask_counts_only_assistant_predictions() -> None:
    mask = tl.assistant_mask(n_prompt=4, n_total=7)
    assert mask.tolist() == [False, False, False, True, True, True]


def test_sequence_logprob_sums_the_answer_tokens() -> None:
    model = random_model("llama", seed=0)
    p, a = model.tokenizer.encode("Q: hi"), model.tokenizer.encode(" yes")
    losses = tl.token_losses(model, p + a)
    assert math.isclose(tl.sequence_logprob(model, p, a), -losses[-len(a):].sum(), rel_tol=1e-9)


def test_dpo_loss_is_log2_at_the_start_and_falls_with_the_margin() -> None:
    loss, margin = tl.dpo_loss(-10.0, -12.0, -10.0, -12.0, beta=0.1)
    assert margin == 0 and math.isclose(loss, math.log(2))
    loss2, margin2 = tl.dpo_loss(-9.0, -13.0, -10.0, -12.0, beta=0.5)
    assert margin2 == 2.0 and math.isclose(loss2, -math.log(1 / (1 + math.exp(-1.0))))
    assert tl.dpo_loss(0, 0, 1000, 0, beta=1.0)[0] > 900  # huge negative margin: no overflow


def test_reward_and_group_advantages() -> None:
    assert tl.answer_reward("It is 42.", 42) == 1.0
    assert tl.answer_reward("maybe 41", 42) == 0.1
    assert tl.answer_reward("6 times 7 is 42", 42) == 0.5
    assert tl.answer_reward("no idea", 42) == 0.0
    adv = tl.group_advantages([1.0, 0.0, 0.0, 1.0])
    assert np.allclose(adv, [1, -1, -1, 1], atol=1e-5)
    assert np.allclose(tl.group_advantages([0.5, 0.5]), 0)


def test_sample_group_is_seeded() -> None:
    model = random_model("gpt2", seed=0)
    ids = model.tokenizer.encode("2+2=")
    a = tl.sample_group(model, ids, 3, max_new=5, seed=4)
    b = tl.sample_group(model, ids, 3, max_new=5, seed=4)
    assert a == b and len(a) == 3 and all(len(x) <= 5 for x in a)


def test_kl_penalised_reward() -> None:
    assert tl.kl_penalised_reward(1.0, -5.0, -7.0, 0.1) == 1.0 - 0.2


def test_tidiness_and_tempered_logprob() -> None:
    assert tl.tidiness_reward("a a a a") == 0.25 and tl.tidiness_reward("Yes, it is.") == 1.5
    model = random_model("gpt2", seed=0)
    p, a = model.tokenizer.encode("Q:"), model.tokenizer.encode(" ok")
    assert math.isclose(tl.tempered_logprob(model, p, a, 1.0), tl.sequence_logprob(model, p, a), rel_tol=1e-9)
    assert tl.tempered_logprob(model, p, a, 0.5) != tl.tempered_logprob(model, p, a, 1.0)
