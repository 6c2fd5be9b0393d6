"""The modern-techniques lab: a mixture of experts cut out of a real MLP, RoPE scaling for long context,
the loss as the context grows, a strict tool-call parser with a safe calculator, greedy decoding with
log-probabilities, and images and audio cut into tokens (numpy only)."""

from __future__ import annotations

import ast
import json
import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from fwdtui.core import ops
from fwdtui.errors import FwdtuiError

Progress = Callable[[float | None, str], None]
Cancelled = Callable[[], bool]


def json_closed(text: str) -> bool:
    """True once `text` holds a complete first JSON object (its braces balance, strings respected)."""
    start = text.find("{")
    if start < 0:
        return False
    depth, in_string, escaped = 0, False, False
    for ch in text[start:]:
        if in_string:  # braces inside strings do not count
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            in_string = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return True
    return False


def _no_progress(fraction: float | None, text: str) -> None:
    return None


def _never() -> bool:
    return False


# ------------------------------------------------------------------------------------------------
# Mixture of experts, sliced out of one dense MLP
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DenseMLP:
    """One block's MLP in a single layout for both families: out = act(x @ w_gate + b) [* (x @ w_up)] @ w_down + b."""

    w_gate: np.ndarray  # [n_embd, n_inner]: GPT-2's c_fc, Llama's gate_proj (transposed)
    b_gate: np.ndarray | None  # [n_inner]
    w_up: np.ndarray | None  # [n_embd, n_inner]: Llama's up_proj (transposed); None for GPT-2
    w_down: np.ndarray  # [n_inner, n_embd]
    b_down: np.ndarray | None  # [n_embd]
    act: str  # "gelu" or "silu"

    @property
    def n_inner(self) -> int:
        return self.w_gate.shape[1]

    def hidden(self, x: np.ndarray) -> np.ndarray:
        """[n_seq, n_embd] -> [n_seq, n_inner]: what each hidden unit passes on for each token."""
        gate = ops.linear(x, self.w_gate, self.b_gate)
        if self.act == "gelu":
            return ops.gelu(gate)
        return ops.silu(gate) * (x @ self.w_up)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The dense MLP: every hidden unit, every token."""
        return ops.linear(self.hidden(x), self.w_down, self.b_down)  # [n_seq, n_embd]


def dense_mlp(model, layer: int) -> DenseMLP:
    """The real MLP weights of block `layer` of the loaded model."""
    w = model.weights
    if model.config.family == "gpt2":
        p = f"h.{layer}.mlp."
        return DenseMLP(w[p + "c_fc.weight"], w.get(p + "c_fc.bias"), None, w[p + "c_proj.weight"],
                        w.get(p + "c_proj.bias"), "gelu")
    p = f"layers.{layer}.mlp."
    bias = w.get(p + "gate_proj.bias")
    return DenseMLP(w[p + "gate_proj.weight"].T, bias, w[p + "up_proj.weight"].T, w[p + "down_proj.weight"].T,
                    w.get(p + "down_proj.bias"), "silu")


def expert_slices(n_inner: int, n_expert: int) -> list[np.ndarray]:
    """Cut the hidden units 0..n_inner-1 into n_expert contiguous groups of (nearly) equal size."""
    if not 1 <= n_expert <= n_inner:
        raise FwdtuiError(f"Cannot cut {n_inner} hidden units into {n_expert} experts.",
                          f"Choose between 1 and {n_inner} experts.")
    return [np.asarray(s) for s in np.array_split(np.arange(n_inner), n_expert)]


@dataclass(frozen=True)
class MoEResult:
    """A prompt routed through experts cut from one real MLP, for every k from 1 to n_expert."""

    layer: int
    n_expert: int
    top_k: int
    router: str  # "linear" or "oracle"
    router_logits: np.ndarray  # [n_seq, n_expert]
    router_probs: np.ndarray  # [n_seq, n_expert] softmax of the logits
    chosen: np.ndarray  # [n_seq, top_k] expert ids, best first
    load: np.ndarray  # [n_expert] tokens sent to each expert at top_k
    balance_loss: float  # Switch-Transformer auxiliary loss at top_k (1.0 = perfectly even)
    errors: np.ndarray  # [n_expert] mean relative error vs the dense MLP for k = 1..n_expert
    expert_norms: np.ndarray  # [n_seq, n_expert] size of each expert's output per token
    dense: np.ndarray  # [n_seq, n_embd] the dense MLP output
    moe: np.ndarray  # [n_seq, n_embd] the top_k output


def router_weights(mlp: DenseMLP, slices: Sequence[np.ndarray]) -> np.ndarray:
    """A linear router [n_embd, n_expert] whose column e is the mean gate weight of expert e's units.

    So x @ w_router is each expert's mean gate pre-activation on the token: routing starts out meaning
    "the expert whose units this token switches on most", instead of noise as a random init would.
    """
    return np.stack([mlp.w_gate[:, s].mean(axis=1) for s in slices], axis=1)  # [n_embd, n_expert]


def moe_forward(mlp: DenseMLP, x: np.ndarray, slices: Sequence[np.ndarray], chosen: np.ndarray) -> np.ndarray:
    """Each token through its chosen experts only, their outputs added (weight 1: they are pieces of one MLP)."""
    hidden = mlp.hidden(x)  # [n_seq, n_inner]; a real MoE computes only the chosen experts' units
    keep = np.zeros_like(hidden)
    for e, units in enumerate(slices):
        rows = (chosen == e).any(axis=1)  # [n_seq] tokens routed to expert e
        keep[np.ix_(rows, units)] = 1.0
    return ops.linear(hidden * keep, mlp.w_down, mlp.b_down)  # [n_seq, n_embd]


def balance_loss(probs: np.ndarray, chosen: np.ndarray) -> float:
    """Switch Transformer's load-balancing loss: n_expert * sum_e (share of picks to e) * (mean prob of e)."""
    n_seq, n_expert = probs.shape
    share = np.bincount(chosen.ravel(), minlength=n_expert) / chosen.size  # [n_expert], sums to 1
    return float(n_expert * np.sum(share * probs.mean(axis=0)))


def route_tokens(model, x: np.ndarray, layer: int, n_expert: int = 8, top_k: int = 2,
                 router: str = "linear") -> MoEResult:
    """Route the normed MLP inputs x [n_seq, n_embd] of block `layer` through n_expert slices of its MLP.

    router "linear": logits = x @ router_weights (a real router's shape); "oracle": logits = the size of
    each expert's output (what a perfectly trained router would aim for, for comparison).
    """
    mlp = dense_mlp(model, layer)
    slices = expert_slices(mlp.n_inner, n_expert)
    top_k = max(1, min(n_expert, top_k))
    hidden = mlp.hidden(x)  # [n_seq, n_inner]
    # each expert's own output: its units' hidden values through its rows of w_down
    expert_out = np.stack([hidden[:, s] @ mlp.w_down[s] for s in slices], axis=1)  # [n_seq, n_expert, n_embd]
    expert_norms = np.linalg.norm(expert_out, axis=-1)  # [n_seq, n_expert]
    if router == "oracle":
        logits = expert_norms
    else:
        logits = x @ router_weights(mlp, slices)  # [n_seq, n_expert]
    probs = ops.softmax(logits.astype(np.float64))
    order = np.argsort(-logits, axis=1, kind="stable")  # [n_seq, n_expert] best expert first
    dense = mlp(x)
    scale = np.maximum(np.linalg.norm(dense, axis=-1), 1e-12)  # [n_seq]
    errors = np.array([np.mean(np.linalg.norm(moe_forward(mlp, x, slices, order[:, :k]) - dense, axis=-1) / scale)
                       for k in range(1, n_expert + 1)])
    chosen = order[:, :top_k]
    return MoEResult(layer, n_expert, top_k, router, logits, probs, chosen,
                     np.bincount(chosen.ravel(), minlength=n_expert), balance_loss(probs, chosen), errors,
                     expert_norms, dense, moe_forward(mlp, x, slices, chosen))


@dataclass(frozen=True)
class PublishedMoE:
    name: str
    n_expert: int  # routed experts per MoE layer
    n_active: int  # routed experts each token uses
    n_shared: int  # experts every token always uses
    total_b: float  # parameters, billions
    active_b: float  # parameters used per token, billions
    note: str


PUBLISHED_MOE: tuple[PublishedMoE, ...] = (
    PublishedMoE("Mixtral 8x7B", 8, 2, 0, 46.7, 12.9, "Mistral 7B's shape with 8 SwiGLU experts per layer"),
    PublishedMoE("Mixtral 8x22B", 8, 2, 0, 141.0, 39.0, "the same recipe, larger"),
    PublishedMoE("Qwen1.5-MoE-A2.7B", 60, 4, 4, 14.3, 2.7, "experts cut from a dense 1.8B model, then trained"),
    PublishedMoE("Qwen3-30B-A3B", 128, 8, 0, 30.5, 3.3, "many small experts, no shared one"),
    PublishedMoE("DeepSeek-V3", 256, 8, 1, 671.0, 37.0, "fine-grained experts plus one shared; no aux loss"),
)


# ------------------------------------------------------------------------------------------------
# Long context: RoPE beyond the trained length
# ------------------------------------------------------------------------------------------------


def rope_base(inv_freq: np.ndarray) -> float:
    """theta recovered from the frequencies themselves: inv_freq[i] = theta^(-2i/head_dim)."""
    head_dim = 2 * len(inv_freq)
    return float(inv_freq[1] ** (-head_dim / 2))


def position_interpolation(inv_freq: np.ndarray, factor: float) -> np.ndarray:
    """Every pair slowed down by `factor`: position 4L turns as far as L did (fine detail gets blurred)."""
    return inv_freq / factor


def ntk_aware(inv_freq: np.ndarray, factor: float) -> np.ndarray:
    """A larger base: theta * factor^(d/(d-2)). The fastest pair keeps its speed, the slowest is slowed by `factor`."""
    head_dim = 2 * len(inv_freq)
    i = np.arange(len(inv_freq))
    return inv_freq * factor ** (-2 * i / (head_dim - 2))  # same as recomputing with the larger base


def yarn(inv_freq: np.ndarray, factor: float, n_ctx: int, alpha: float = 1.0, beta: float = 32.0) -> np.ndarray:
    """YaRN's "NTK-by-parts": pairs that turn more than beta times in the trained context keep their speed,
    pairs that turn less than alpha times are interpolated, a linear ramp between."""
    turns = n_ctx * inv_freq / (2 * np.pi)  # [head_dim/2] full turns within the trained context
    keep = np.clip((turns - alpha) / (beta - alpha), 0.0, 1.0)  # 1: keep the pair's speed
    return keep * inv_freq + (1 - keep) * inv_freq / factor


def yarn_temperature(factor: float) -> float:
    """YaRN also sharpens attention a little: logits multiplied by (0.1 ln(factor) + 1)^2."""
    return (0.1 * math.log(factor) + 1.0) ** 2 if factor > 1 else 1.0


def llama3_scaling(inv_freq: np.ndarray, factor: float, n_ctx: int) -> np.ndarray:
    """Llama 3.1's rule, through the engine's own `rope_frequencies` with this model's base and length."""
    head_dim = 2 * len(inv_freq)
    return ops.rope_frequencies(head_dim, rope_base(inv_freq), {
        "factor": factor, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": n_ctx})


@dataclass(frozen=True)
class RopeScheme:
    name: str
    inv_freq: np.ndarray  # [head_dim/2]
    max_angle: np.ndarray  # [head_dim/2] angle reached at the new length (radians)
    unseen: int  # pairs whose angle at the new length goes past anything seen in training


def rope_schemes(inv_freq: np.ndarray, n_ctx: int, factor: float = 4.0) -> list[RopeScheme]:
    """Each scaling rule applied to the model's real frequencies, judged at position factor * n_ctx.

    A pair is "unseen" when it never made a full turn in training (wavelength > n_ctx) and at the new length
    turns further than the trained maximum n_ctx * inv_freq: those angles are new to the model.
    """
    trained_max = n_ctx * inv_freq  # [head_dim/2]
    full_turn = trained_max >= 2 * np.pi  # pairs that saw every angle during training
    new_len = factor * n_ctx
    out = []
    for name, freq in (("none (as trained)", inv_freq), ("position interp.", position_interpolation(inv_freq, factor)),
                       ("NTK-aware", ntk_aware(inv_freq, factor)), ("YaRN", yarn(inv_freq, factor, n_ctx)),
                       ("Llama 3.1", llama3_scaling(inv_freq, factor, n_ctx))):
        angle = new_len * freq
        unseen = int(np.sum(~full_turn & (angle > trained_max * (1 + 1e-9))))
        out.append(RopeScheme(name, freq, angle, unseen))
    return out


@dataclass(frozen=True)
class ContextLoss:
    """Negative log-likelihood of each token of a text given all before it, from one chunked pass."""

    n_tokens: int
    nll: np.ndarray  # [n_tokens - 1] nats, token t+1 predicted from tokens 0..t
    buckets: tuple[tuple[int, int, float], ...]  # (first position, last position, mean nll) on doubling spans
    complete: bool  # False when cancelled part-way


def context_loss(model, ids: Sequence[int], chunk: int = 64, progress: Progress = _no_progress,
                 cancelled: Cancelled = _never) -> ContextLoss:
    """Run the text through the model in chunks with the KV cache (the same numbers as one pass, with progress)."""
    ids = list(ids)[: model.config.n_ctx]
    cache = model.new_cache()
    nll: list[np.ndarray] = []
    last_row = None
    complete = True
    for start in range(0, len(ids), chunk):
        if cancelled():
            complete = False
            break
        part = ids[start:start + chunk]
        logits, _ = model.forward(part, cache=cache)  # [len(part), n_vocab]
        logp = ops.log_softmax(logits.astype(np.float64))
        rows = logp if last_row is None else np.vstack([last_row[None], logp])  # predictions for part's tokens
        targets = part if last_row is not None else part[1:]
        nll.append(-rows[np.arange(len(targets)), targets])
        last_row = logp[-1]
        progress(min(1.0, (start + len(part)) / len(ids)), f"Reading {start + len(part)}/{len(ids)} tokens")
    values = np.concatenate(nll) if nll else np.zeros(0)
    buckets = []
    lo, hi = 0, 1
    while lo < len(values):
        hi = min(len(values), max(hi, lo + 1))
        buckets.append((lo + 1, hi, float(values[lo:hi].mean())))  # position of the predicted token
        lo, hi = hi, 2 * hi
    return ContextLoss(len(ids), values, tuple(buckets), complete)


# ------------------------------------------------------------------------------------------------
# Greedy decoding that keeps each token's log-probability
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Generation:
    tokens: tuple[int, ...]
    logprobs: tuple[float, ...]  # natural log of the probability the model gave each chosen token
    complete: bool  # False when cancelled


def greedy_with_logprobs(model, ids: Sequence[int], n_new: int, on_token: Callable[[list[int]], bool | None] | None = None,
                         cancelled: Cancelled = _never, stop_ids: Sequence[int] = ()) -> Generation:
    """Greedy decoding with the KV cache; stops after an end token (kept), when the context is full, or when
    `on_token(tokens so far)` returns True (e.g. a complete tool call has been written)."""
    cache = model.new_cache()
    logits, _ = model.forward(list(ids), cache=cache, last_only=True)
    stops = set(stop_ids) | ({model.config.eos_token_id} if model.config.eos_token_id is not None else set())
    tokens: list[int] = []
    logprobs: list[float] = []
    for _ in range(n_new):
        if cancelled():
            return Generation(tuple(tokens), tuple(logprobs), False)
        logp = ops.log_softmax(logits[-1].astype(np.float64))
        token = int(np.argmax(logp))
        tokens.append(token)
        logprobs.append(float(logp[token]))
        done = bool(on_token(tokens)) if on_token is not None else False
        if done or token in stops or cache.length >= model.config.n_ctx:
            break
        logits, _ = model.forward([token], cache=cache, last_only=True)
    return Generation(tuple(tokens), tuple(logprobs), True)


@dataclass(frozen=True)
class FinalAnswer:
    """The number a generated text ends up answering with, and where it sits among the generated tokens."""

    value: str | None  # as written ("42", "1,500", "0.33"); None when the text holds no number
    how: str  # which rule found it: "answer is", "=", "last number" or "none"
    span: tuple[int, int]  # [first, end) indices of the tokens that spell the number ((0, 0) when none)


# whole digits only (no sign: "5-2" must not read as -2), thousands commas inside, an optional decimal part
_NUMBER = rb"\d(?:[\d,]*\d)?(?:\.\d+)?"
_ANSWER_RULES = (("answer is", rb"answer\s+is\s*:?\s*\$?(" + _NUMBER + rb")"),
                 ("=", rb"=\s*\$?(" + _NUMBER + rb")"),
                 ("last number", rb"(" + _NUMBER + rb")"))


def final_answer(pieces: Sequence[bytes]) -> FinalAnswer:
    """The answer in generated tokens (given as their bytes), found the way simple graders do: the last
    "answer is N", else the last "= N", else the last number at all.

    >>> final_answer([b"15 + 27", b" = 4", b"2", b". So 15"]).value
    '42'
    """
    text = b"".join(pieces)
    ends = np.cumsum([len(p) for p in pieces])  # [n_tokens] byte offset where each token ends
    for how, pattern in _ANSWER_RULES:
        matches = list(re.finditer(pattern, text, re.IGNORECASE))
        if matches:
            start, end = matches[-1].span(1)
            first = int(np.searchsorted(ends, start, side="right"))  # the token holding byte `start`
            last = int(np.searchsorted(ends, end - 1, side="right"))  # the token holding the last byte
            return FinalAnswer(text[start:end].decode("ascii"), how, (first, last + 1))
    return FinalAnswer(None, "none", (0, 0))


def answer_matches(value: str | None, known: str) -> bool:
    """True when a found answer equals the known one as a number ("1,500" == "1500", "8.0" == "8")."""
    if value is None:
        return False
    try:
        return float(value.replace(",", "")) == float(known.replace(",", ""))
    except ValueError:
        return False


# ------------------------------------------------------------------------------------------------
# Tool use: a strict call parser, a safe calculator, a clock
# ------------------------------------------------------------------------------------------------

TOOLS = {"calculator": "does arithmetic with + - * / ** and brackets", "clock": "tells the current time"}


class ToolError(FwdtuiError):
    """A tool call that cannot run (unknown tool, bad expression); its message goes back to the model."""


@dataclass(frozen=True)
class ToolCall:
    tool: str
    expression: str | None  # the calculator's input
    span: tuple[int, int]  # where the JSON object sits in the generated text


@dataclass(frozen=True)
class ParsedCall:
    call: ToolCall | None
    problem: str  # empty when call is set: what was wrong with the text otherwise


def parse_tool_call(text: str) -> ParsedCall:
    """The first JSON object in `text`, checked strictly: {"tool": "calculator", "expression": "..."} or
    {"tool": "clock"}. Anything else is reported, never guessed at."""
    start = text.find("{")
    if start < 0:
        return ParsedCall(None, "no JSON object in the reply")
    try:
        obj, end = json.JSONDecoder().raw_decode(text, start)
    except json.JSONDecodeError as err:
        return ParsedCall(None, f"the JSON does not parse ({err.msg} at character {err.pos - start})")
    if not isinstance(obj, dict):
        return ParsedCall(None, "the JSON is not an object")
    tool = obj.get("tool")
    if tool not in TOOLS:
        return ParsedCall(None, f"unknown tool {tool!r} (known: {', '.join(TOOLS)})")
    extra = set(obj) - {"tool", "expression"}
    if extra:
        return ParsedCall(None, f"unexpected field(s) {', '.join(sorted(map(str, extra)))}")
    expression = obj.get("expression")
    if tool == "calculator" and (not isinstance(expression, str) or not expression.strip()):
        return ParsedCall(None, "the calculator call has no \"expression\" text")
    if tool == "clock" and expression is not None:
        return ParsedCall(None, "the clock takes no expression")
    return ParsedCall(ToolCall(tool, expression, (start, end)), "")


_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}


def safe_arithmetic(expression: str) -> float | int:
    """Evaluate numbers with + - * / ** and brackets by walking the syntax tree (never eval)."""
    if len(expression) > 200:
        raise ToolError("The expression is longer than 200 characters.", "Ask for a shorter calculation.")
    try:
        tree = ast.parse(expression.replace("^", "**").replace("×", "*"), mode="eval")
    except SyntaxError:
        raise ToolError(f"{expression!r} is not arithmetic.", "Use numbers with + - * / ** and brackets.") from None

    def value(node: ast.AST) -> float | int:
        if isinstance(node, ast.Expression):
            return value(node.body)
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return node.value
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return _UNARY[type(node.op)](value(node.operand))
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left, right = value(node.left), value(node.right)
            if isinstance(node.op, ast.Pow) and (abs(right) > 64 or abs(left) > 1e6):
                raise ToolError("That power is too large to compute.", "Use exponents up to 64.")
            if isinstance(node.op, ast.Div) and right == 0:
                raise ToolError("Division by zero.", "Divide by a number other than 0.")
            return _BINARY[type(node.op)](left, right)
        raise ToolError(f"{ast.unparse(node)!r} is not allowed in the calculator.",
                        "Use numbers with + - * / ** and brackets only.")

    result = value(tree)
    if isinstance(result, complex) or (isinstance(result, float) and not math.isfinite(result)):
        raise ToolError("The result is not a finite real number.", "Check the expression.")
    return result


def run_tool(call: ToolCall, now: str) -> str:
    """The tool's answer as text for the model (`now`: the clock's reading, passed in so tests are fixed)."""
    if call.tool == "clock":
        return now
    result = safe_arithmetic(call.expression or "")
    if isinstance(result, float) and result.is_integer() and abs(result) < 1e15:
        result = int(result)
    return f"{result:.6g}" if isinstance(result, float) else str(result)


# ------------------------------------------------------------------------------------------------
# Multimodal: images and audio as sequences of vectors
# ------------------------------------------------------------------------------------------------


def synthetic_image(size: int = 64, seed: int = 0) -> np.ndarray:
    """A seeded picture [size, size, 3] in 0..1: a sky gradient, a sun disc, a square house and a roof."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size  # [size, size] each
    img = np.zeros((size, size, 3))
    img[..., 2] = 0.9 - 0.5 * y  # blue sky, darker towards the ground
    img[..., 1] = 0.5 - 0.2 * y
    img[y > 0.7] = (0.2, 0.6, 0.2)  # grass
    cx, cy = rng.uniform(0.15, 0.85), rng.uniform(0.1, 0.3)
    img[(x - cx) ** 2 + (y - cy) ** 2 < 0.012] = (1.0, 0.85, 0.1)  # sun
    left = rng.uniform(0.1, 0.5)
    img[(y > 0.45) & (y <= 0.75) & (x > left) & (x < left + 0.35)] = (0.8, 0.3, 0.2)  # house
    roof = (y > 0.3) & (y <= 0.45) & (np.abs(x - left - 0.175) < (y - 0.3) * 1.3)
    img[roof] = (0.4, 0.2, 0.1)
    return np.clip(img + rng.normal(0, 0.02, img.shape), 0, 1)


def patchify(image: np.ndarray, patch: int) -> np.ndarray:
    """[H, W, C] -> [n_patches, patch*patch*C], patches in reading order (row by row), as ViT cuts them."""
    h, w, c = image.shape
    rows, cols = h // patch, w // patch
    cut = image[: rows * patch, : cols * patch]
    grid = cut.reshape(rows, patch, cols, patch, c).transpose(0, 2, 1, 3, 4)  # [rows, cols, patch, patch, C]
    return grid.reshape(rows * cols, patch * patch * c)


def random_projection(n_in: int, n_out: int, seed: int = 0) -> np.ndarray:
    """An untrained patch embedding [n_in, n_out] (a trained encoder learns this matrix)."""
    return np.random.default_rng(seed).normal(0, 1 / math.sqrt(n_in), (n_in, n_out))


@dataclass(frozen=True)
class VisionEncoder:
    name: str
    image: int  # side in pixels
    patch: int
    merge: int = 1  # patches merged per side before the language model (Qwen2-VL: 2)
    cls: int = 0  # extra class token

    @property
    def n_tokens(self) -> int:
        return (self.image // self.patch // self.merge) ** 2 + self.cls


VISION_ENCODERS: tuple[VisionEncoder, ...] = (
    VisionEncoder("ViT-B/16 @224", 224, 16, cls=1),
    VisionEncoder("CLIP ViT-L/14 @224", 224, 14, cls=1),
    VisionEncoder("CLIP ViT-L/14 @336 (LLaVA-1.5)", 336, 14, cls=1),
    VisionEncoder("SigLIP so400m/14 @384", 384, 14),
    VisionEncoder("Qwen2-VL 14px, 2x2 merge @448", 448, 14, merge=2),
)


def audio_tokens(seconds: float, hop_ms: float = 10.0, stride: int = 2) -> int:
    """Whisper-style: one frame of mel features every hop_ms, then a convolution of stride `stride`."""
    return int(round(seconds * 1000 / hop_ms)) // stride


def audio_frames(signal: np.ndarray, sample_rate: int, window_ms: float = 25.0, hop_ms: float = 10.0) -> np.ndarray:
    """[n_samples] -> [n_frames, n_bins]: log power of each overlapping window (a plain spectrogram)."""
    win, hop = int(sample_rate * window_ms / 1000), int(sample_rate * hop_ms / 1000)
    n = 1 + max(0, len(signal) - win) // hop
    frames = np.stack([signal[i * hop: i * hop + win] * np.hanning(win) for i in range(n)])  # [n, win]
    return np.log(np.abs(np.fft.rfft(frames, axis=1)) ** 2 + 1e-10)  # [n, win // 2 + 1]


@dataclass(frozen=True)
class PatchTokens:
    """An image cut into patches and each patch projected to one vector of the language model's width."""

    grid: tuple[int, int]  # (rows, cols) of patches
    patches: np.ndarray  # [n_patches, patch*patch*3] raw pixels, reading order
    tokens: np.ndarray  # [n_patches, n_embd] = patches @ projection


def embed_patches(image: np.ndarray, patch: int, n_embd: int, seed: int = 0) -> PatchTokens:
    """ViT's first step with an untrained (seeded random) projection: patches -> flattened -> [n_embd] each."""
    patches = patchify(image, patch)  # [n_patches, patch*patch*3]
    tokens = patches @ random_projection(patches.shape[1], n_embd, seed)  # [n_patches, n_embd]
    return PatchTokens((image.shape[0] // patch, image.shape[1] // patch), patches, tokens)


def synthetic_sound(seconds: float = 1.0, sample_rate: int = 16000, seed: int = 0) -> np.ndarray:
    """A seeded test sound [n_samples]: a steady 440 Hz tone, a chirp rising 300 -> 3000 Hz, a little noise."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate  # [n_samples] time in seconds
    rise = 300 + (3000 - 300) * t / (2 * seconds)  # instantaneous frequency grows linearly from 300 Hz
    chirp = np.sin(2 * np.pi * rise * t)
    noise = np.random.default_rng(seed).normal(0, 0.05, t.shape)
    return 0.5 * np.sin(2 * np.pi * 440 * t) + 0.5 * chirp + noise
