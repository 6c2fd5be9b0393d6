"""RLHF: a reward for each of two real samples and the KL penalty that keeps the policy near the reference,
computed from the loaded model's own log-probabilities."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType

from fwdtui.chapters.base import Chapter, register
from fwdtui.chapters.training._common import SCROLL_BINDINGS, Picture, block
from fwdtui.core import training_lab as tl
from fwdtui.errors import PromptError
from fwdtui.session import Snapshot
from fwdtui.tokenizers.chat import encode_chat
from fwdtui.widgets.palette import ACCENT, DIM, cell_style
from fwdtui.tokenizers import fragment_text

QUESTION = "Give me one tip for sleeping well."
TEMPERATURES = (0.5, 0.7, 1.0)  # the stand-in policy: the model's own distribution, sharpened
BETAS = (0.01, 0.05, 0.1, 0.5)
MAX_NEW, N_SAMPLES = 24, 2


@dataclass(frozen=True)
class RlhfResult:
    model_name: str
    texts: tuple[str, ...]
    rewards: tuple[float, ...]
    logp_ref: tuple[float, ...]  # log ref(y): the loaded model itself
    logp_policy: tuple[float, ...]  # log π_T(y): the model's distribution at the policy temperature
    seed: int
    temperature: float


@register
class RlhfChapter(Picture, Chapter):
    ID = "training.rlhf"
    SECTION = "training"
    TITLE = "RLHF"
    SUMMARY = "A reward model and the KL penalty."
    PICTURE = "rlhf"
    EXPLANATION = """
**RLHF** (reinforcement learning from human feedback) first trains a **reward model**: people rank pairs
of answers and a copy of the LLM with a one-number head learns to score answers the way they ranked
them. Then the **policy** samples answers, the reward model scores them, and training raises the
probability of high-scoring ones. Left alone the policy would game the reward, so each sample's reward
is reduced by a **KL penalty**: β·(log π(y) - log ref(y)), how much more likely the policy finds the
answer than the frozen starting model. Here the samples and log-probabilities are real; the reward is a
hand-written stand-in and the "policy" is the model at a lower temperature (a small-scale demo).
The answers are sampled from that policy. `r` resample · `t` policy temperature · `b` β · `j`/`k` scroll.
"""
    CODE_FUNCTIONS = (tl.kl_penalised_reward, tl.tempered_logprob, tl.tidiness_reward, tl.sample_group)
    NEEDS_MODEL = True

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "resample", "Resample", tooltip="Sample two new answers with the next seed"),
        Binding("t", "temperature", "Policy T", tooltip="Cycle the stand-in policy's temperature (0.5, 0.7, 1)"),
        Binding("b", "beta", "β", show=False, tooltip="Cycle β, the weight of the KL penalty"),
        *SCROLL_BINDINGS,
    ]

    def __init__(self, session: Any = None) -> None:
        super().__init__(session)
        self.seed = 0
        self.temperature_index = 1
        self.beta_index = 2

    def compose_visual(self) -> ComposeResult:
        yield from self.picture_area()

    def compute(self, snapshot: Snapshot) -> RlhfResult:
        model = snapshot.require_model()
        tok = model.tokenizer
        if tok is None:
            raise PromptError("This model has no tokenizer.", "Choose a model with tokenizer files (press m).")
        ids = encode_chat(tok, [{"role": "user", "content": QUESTION}])
        if len(ids) + MAX_NEW > model.config.n_ctx:
            raise PromptError(f"The question and answers need {len(ids) + MAX_NEW} tokens; {model.info.name} has "
                              f"a context of {model.config.n_ctx}.", "Load a model with a longer context (press m).")
        stops = [i for name, i in getattr(tok, "special_tokens", {}).items() if name in ("<|im_end|>", "<|eot_id|>")]
        seed, temp = self.seed, TEMPERATURES[self.temperature_index]
        # RLHF samples from the policy, so the KL estimate is positive on average
        answers = tl.sample_group(model, ids, N_SAMPLES, MAX_NEW, temp, 500 + seed * 10, stops,
                                  lambda g: snapshot.progress((g + 1) / (N_SAMPLES + 1), f"sampled {g + 1}"),
                                  snapshot.cancelled)
        answers = [a for a in answers if a] or [tok.encode(" Go to bed at the same time.")]
        snapshot.progress(N_SAMPLES / (N_SAMPLES + 1), "log-probabilities under reference and policy")
        texts = tuple(fragment_text(tok, a) for a in answers)
        ref = tuple(tl.tempered_logprob(model, ids, a, 1.0) for a in answers)
        policy = tuple(tl.tempered_logprob(model, ids, a, temp) for a in answers)
        return RlhfResult(model.info.name, texts, tuple(tl.tidiness_reward(t) for t in texts), ref, policy, seed,
                          temp)

    def draw(self, result: RlhfResult) -> None:
        self.update_breadcrumb(f"T {TEMPERATURES[self.temperature_index]} · β {BETAS[self.beta_index]}")
        self.picture_canvas().show(lambda width: self._picture(result, width))

    def action_resample(self) -> None:
        self.seed += 1
        self.recompute()

    def action_temperature(self) -> None:
        self.temperature_index = (self.temperature_index + 1) % len(TEMPERATURES)
        self.recompute()

    def action_beta(self) -> None:
        self.beta_index = (self.beta_index + 1) % len(BETAS)
        self.redraw()

    def _picture(self, r: RlhfResult, width: int) -> Text:
        w = max(30, min(width - 2, 110))
        out = Text(no_wrap=True, overflow="crop")
        temp, beta = r.temperature, BETAS[self.beta_index]
        out.append(f"1. The policy ({r.model_name} at T {temp}) answers (seed {r.seed}): {QUESTION}\n",
                   style="bold")
        for i, text in enumerate(r.texts):
            line = text.replace("\n", "↵").strip() or "(nothing)"
            out.append(f"  {i + 1}. ", style=DIM)
            out.append((line if len(line) <= w - 6 else line[: w - 7] + "…") + "\n")
        out.append(f"\n2. Reward - β·KL   (policy = model at T {temp}, β {beta})\n", style="bold")
        out.append("  #  reward  log ref   log π     KL est    objective\n", style=DIM)
        scores = []
        for i in range(len(r.texts)):
            pol = r.logp_policy[i]
            kl = pol - r.logp_ref[i]
            score = tl.kl_penalised_reward(r.rewards[i], pol, r.logp_ref[i], beta)
            scores.append(score)
            out.append(f"  {i + 1}  {r.rewards[i]:6.2f}  {r.logp_ref[i]:8.2f}  {pol:8.2f}  {kl:+8.2f}  ")
            out.append(f"{score:+9.3f}\n", style=cell_style(ACCENT, bold=True))
        if len(scores) == 2 and abs(scores[0] - scores[1]) > 1e-9:
            out.append(f"  training would favour answer {1 + int(scores[1] > scores[0])}\n", style=cell_style(ACCENT))
        elif len(scores) == 2:
            out.append("  a tie: this pair gives no preference\n", style=cell_style(ACCENT))
        block(out, "KL est is log π(y) - log ref(y) on the sample itself, the per-sample estimate RLHF uses. "
                   "At T 1 the policy equals the reference and the penalty is 0; a sharper policy finds its "
                   "likely answers even likelier, so the penalty grows, and a larger β makes drifting cost "
                   "more than the reward gains. The reward here (distinct words, a finished sentence) stands "
                   "in for a learned reward model.", w, DIM)
        return out
