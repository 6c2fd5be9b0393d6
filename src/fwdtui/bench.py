"""`fwdtui bench`: how fast the numpy core loads, prefills and decodes, against transformers if asked."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# GPT-2 small (124M) as Hugging Face writes its config.json: the default model of the bench.
GPT2_124M_CONFIG = {
    "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_layer": 12, "n_embd": 768, "n_head": 12,
    "n_positions": 1024, "n_ctx": 1024, "vocab_size": 50257, "layer_norm_epsilon": 1e-5,
    "activation_function": "gelu_new", "bos_token_id": 50256, "eos_token_id": 50256,
}
DECODE_PROMPT = 16  # tokens in the cache before the timed decode steps start


@dataclass
class BenchSettings:
    """How much to measure: `quick` trades precision (fewer repeats, no 1024 prefill) for time."""

    repeats: int = 5
    warmup: int = 1
    prefill_lengths: tuple[int, ...] = (16, 64, 256, 1024)
    decode_tokens: int = 64
    decode_repeats: int = 3
    trace_tokens: int = 64

    @classmethod
    def make(cls, quick: bool) -> "BenchSettings":
        if quick:
            return cls(repeats=3, prefill_lengths=(16, 64, 256), decode_repeats=2)
        return cls()


# --------------------------------------------------------------------------------------------------
# The default model: GPT-2 124M shaped, random weights, written once to a safetensors folder


def random_gpt2_folder(seed: int = 0) -> Path:
    """A Hugging Face folder (config.json + model.safetensors) of GPT-2 124M shape with random weights.

    Written once per machine into the temp directory, so that loading is measured from a real file.
    """
    folder = Path(tempfile.gettempdir()) / f"fwdtui-bench-gpt2-124m-seed{seed}"
    done = folder / "complete"
    if done.is_file():
        return folder
    from safetensors.numpy import save_file

    from fwdtui.core.config import ModelConfig
    from fwdtui.loaders.hf_folder import expected_shapes

    cfg = ModelConfig.from_hf(GPT2_124M_CONFIG)
    rng = np.random.default_rng(seed)
    tensors = {}
    for name, shape in expected_shapes(cfg).items():
        if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
            tensors["transformer." + name] = np.ones(shape, dtype=np.float32)
        else:  # GPT-2's own init scale, so activations stay in a realistic range
            tensors["transformer." + name] = (0.02 * rng.standard_normal(shape, dtype=np.float32))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(GPT2_124M_CONFIG, indent=2))
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    done.write_text("ok\n")
    return folder


# --------------------------------------------------------------------------------------------------
# Timing helpers


def median_seconds(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> float:
    """Median wall time of `fn()` over `repeats` runs after `warmup` untimed ones (caches, page faults)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports kilobytes, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _l3_bytes() -> int:
    try:
        text = Path("/sys/devices/system/cpu/cpu0/cache/index3/size").read_text().strip()
        return int(text[:-1]) * 1024 if text.endswith("K") else int(text)
    except (OSError, ValueError):
        return 32 * 2**20


def bandwidth_matrix_bytes() -> int:
    """Big enough that the matrix cannot sit in the last-level cache: 2x L3, between 256 MiB and 1 GiB."""
    return int(min(2**30, max(2**28, 2 * _l3_bytes())))


def measure_bandwidth(n_bytes: int, repeats: int = 10) -> float:
    """Bytes per second that numpy's matrix-vector product streams from memory (the decode bottleneck).

    A [n_out, 4096] float32 matrix times a vector reads every weight once and does 2 flops per
    4 bytes, so its speed is the memory's, the same limit a batch-1 decode step runs into.
    """
    n_in = 4096
    n_out = max(1, n_bytes // (4 * n_in))
    w = np.full((n_out, n_in), 0.5, dtype=np.float32)  # written, so every page is really in RAM
    x = np.ones(n_in, dtype=np.float32)
    seconds = median_seconds(lambda: w @ x, repeats, warmup=2)
    return w.nbytes / seconds


@contextlib.contextmanager
def blas_threads(n: int | None) -> Iterator[None]:
    """Run the block with numpy's BLAS limited to n threads (threadpoolctl); None leaves it alone.

    On a machine shared with other jobs, one thread per engine gives steadier figures than two:
    a two-thread product waits for its slower half whenever a neighbour holds the other core."""
    if n is None:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        from fwdtui.errors import ConfigError

        raise ConfigError("--threads needs threadpoolctl.",
                          "pip install threadpoolctl, or set OPENBLAS_NUM_THREADS before running fwdtui bench.") from None
    with threadpool_limits(limits=n, user_api="blas"):
        yield


def weight_bytes_per_token(model) -> int:
    """Bytes of weights one decode step reads: every matrix once, but of an embedding table only one
    row (unless the table is also the unembedding, which reads all of it)."""
    cfg = model.config
    total = sum(w.nbytes for w in model.weights.values())
    if cfg.family == "gpt2":
        total -= model.weights["wpe.weight"].nbytes  # one row of positions; wte is the tied unembedding
    elif "lm_head.weight" in model.weights:
        total -= model.weights["embed_tokens.weight"].nbytes
    return int(total)


def machine_info() -> dict[str, Any]:
    """CPU model, BLAS and its thread count, as threadpoolctl sees them (or numpy's build config)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {"cpu": cpu, "cpu_count": os.cpu_count(), "numpy": np.__version__,
                            "env": {k: v for k, v in os.environ.items()
                                    if k.startswith(("OPENBLAS_", "OMP_", "MKL_")) and "KEY" not in k}}
    try:
        from threadpoolctl import threadpool_info

        blas = [p for p in threadpool_info() if p.get("user_api") == "blas"]
        if blas:
            info["blas"] = f"{blas[0].get('internal_api')} {blas[0].get('version')} ({blas[0].get('architecture')})"
            info["threads"] = int(blas[0].get("num_threads"))
            info["threads_from"] = "threadpoolctl"
    except ImportError:
        pass
    if "threads" not in info:
        try:
            cfg = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
            info["blas"] = f"{cfg.get('name')} {cfg.get('version')}"
        except Exception:  # numpy < 1.25 has no dict mode; the BLAS name is then unknown
            info["blas"] = "unknown"
        env = os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS")
        info["threads"] = int(env) if env and env.isdigit() else os.cpu_count()
        info["threads_from"] = "environment / cpu count"
    return info


# --------------------------------------------------------------------------------------------------
# The workloads, as zero-argument callables; a callable that returns a float reports its own time


def _prompt(n: int, vocab: int, seed: int = 1) -> list[int]:
    return np.random.default_rng(seed).integers(0, vocab, n).tolist()


def numpy_tasks(model, s: BenchSettings) -> dict[str, Callable[[], Any]]:
    """Our engine: prefill per length, a KV-cache decode, and logits vs the full Trace."""
    cfg = model.config
    tasks: dict[str, Callable[[], Any]] = {}
    for n in s.prefill_lengths:
        if n <= cfg.n_ctx:
            ids = _prompt(n, cfg.vocab_size)
            # A prefill fills the KV cache and needs the next token's logits only.
            tasks[f"prefill {n}"] = lambda ids=ids: model.forward(ids, cache=model.new_cache(), last_only=True)
    prompt = _prompt(DECODE_PROMPT, cfg.vocab_size)
    n_new = min(s.decode_tokens, cfg.n_ctx - DECODE_PROMPT)

    def decode() -> float:
        cache = model.new_cache()
        logits, _ = model.forward(prompt, cache=cache, last_only=True)
        t0 = time.perf_counter()
        for _ in range(n_new):
            token = int(np.argmax(logits[-1]))  # greedy: sampling is not what is measured
            logits, _ = model.forward([token], cache=cache, last_only=True)
        return time.perf_counter() - t0

    tasks["decode"] = decode
    ids = _prompt(min(s.trace_tokens, cfg.n_ctx), cfg.vocab_size)
    tasks["logits"] = lambda: model.logits(ids)
    tasks["trace"] = lambda: model.trace(ids)
    return tasks


def transformers_tasks(hf, s: BenchSettings, lengths: list[int]) -> dict[str, Callable[[], Any]]:
    """The same prefill and decode with a transformers model (call inside torch.inference_mode)."""
    import torch

    vocab = hf.config.vocab_size
    tasks: dict[str, Callable[[], Any]] = {}
    for n in lengths:
        ids = torch.tensor([_prompt(n, vocab)])
        tasks[f"prefill {n}"] = lambda ids=ids: hf(input_ids=ids, use_cache=True, logits_to_keep=1)
    prompt = torch.tensor([_prompt(DECODE_PROMPT, vocab)])
    n_new = min(s.decode_tokens, hf.config.max_position_embeddings - DECODE_PROMPT)

    def decode() -> float:
        res = hf(input_ids=prompt, use_cache=True, logits_to_keep=1)
        cache, logits = res.past_key_values, res.logits
        t0 = time.perf_counter()
        for _ in range(n_new):
            token = logits[:, -1].argmax(-1, keepdim=True)  # [1, 1]
            res = hf(input_ids=token, cache=cache, use_cache=True)
            cache, logits = res.past_key_values, res.logits
        return time.perf_counter() - t0

    tasks["decode"] = decode
    return tasks


def load_transformers(folder: Path, threads: int):
    """transformers' model for the same folder, float32, with as many torch threads as numpy's BLAS has."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    torch.set_num_threads(threads)
    hf = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    return hf.eval()


def round_robin(groups: dict[str, dict[str, Callable[[], Any]]], repeats: int) -> dict[str, dict[str, list[float]]]:
    """Seconds of every run of every task, run in turns (ours, theirs, ours, ...) so that a neighbour's load
    on a shared machine slows both sides alike instead of whichever happened to run during it."""
    times: dict[str, dict[str, list[float]]] = {g: {k: [] for k in tasks} for g, tasks in groups.items()}
    names = list(dict.fromkeys(k for tasks in groups.values() for k in tasks))
    for name in names:
        for _ in range(max(1, repeats)):
            for group, tasks in groups.items():
                if name not in tasks:
                    continue
                t0 = time.perf_counter()
                own = tasks[name]()
                times[group][name].append(own if isinstance(own, float) else time.perf_counter() - t0)
    return times


# --------------------------------------------------------------------------------------------------
# The whole run


def run_bench(model: Any = None, *, compare: str | None = None, quick: bool = False,
              progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure a model (name, path, a loaded Model, or None for GPT-2 124M with random weights).

    Returns a JSON-ready dict: machine, load time, prefill ms per length, decode tokens/s, the cost of
    the Trace, memory bandwidth and the decode ceiling it implies, peak memory, and transformers'
    figures with ratios when `compare="transformers"`.
    """
    import fwdtui
    from fwdtui.core.model import Model

    say = progress or (lambda _msg: None)
    s = BenchSettings.make(quick)
    result: dict[str, Any] = {"machine": machine_info(), "settings": {"quick": quick, "repeats": s.repeats}}
    folder: Path | None = None
    if isinstance(model, Model):
        m = model
        result["load_s"] = m.info.load_seconds
    else:
        if model is None:
            say("writing the random GPT-2 124M folder (once)")
            folder = random_gpt2_folder()
            spec: Any = folder
        else:
            spec = model
        say("loading")
        loads = []
        m = None
        for _ in range(1 if quick else 3):  # the first load may also page the file in from disk
            del m  # one model in memory at a time, so that the peak below is one model's
            t0 = time.perf_counter()
            m = fwdtui.load_model(spec)
            loads.append(time.perf_counter() - t0)
        result["load_s"] = float(np.median(loads))
        result["load_first_s"] = loads[0]
    if folder is None and m.info.path and (Path(m.info.path) / "config.json").is_file():
        folder = Path(m.info.path)
    cfg = m.config
    result["model"] = {"name": m.info.name if model is not None else "gpt2-124m-random", "family": cfg.family,
                       "n_layer": cfg.n_layer, "n_embd": cfg.n_embd, "n_head": cfg.n_head, "vocab": cfg.vocab_size,
                       "n_ctx": cfg.n_ctx, "n_params": m.n_params, "folder": str(folder) if folder else None}

    ours = numpy_tasks(m, s)
    say("warm-up (numpy)")
    for task in ours.values():  # every workload once: caches warm, and its memory counted in the peak
        task()
    result["peak_rss_mb"] = peak_rss_mb()

    groups = {"numpy": ours}
    hf = None
    if compare == "transformers":
        if folder is None:
            result["transformers"] = {"error": "transformers needs a Hugging Face folder (config.json + safetensors)"}
        else:
            try:
                say("loading transformers")
                t0 = time.perf_counter()
                hf = load_transformers(folder, int(result["machine"]["threads"] or 1))
                result["transformers"] = {"load_s": time.perf_counter() - t0}
            except ImportError as err:
                result["transformers"] = {"error": f"{err}; install with pip install -e '.[bench]'"}

    # The bandwidth probe runs in turns with the decodes, so both see the same neighbours.
    n_bytes = bandwidth_matrix_bytes()
    say(f"allocating a {n_bytes / 1e6:.0f} MB matrix for the bandwidth probe")
    probe_w = np.full((n_bytes // (4 * 4096), 4096), 0.5, dtype=np.float32)
    probe_x = np.ones(4096, dtype=np.float32)
    groups["bandwidth"] = {"decode": lambda: probe_w @ probe_x}
    prefill_names = [k for k in ours if k.startswith("prefill")]
    say("timing (" + ", ".join(list(ours)) + ")" + (" against transformers" if hf is not None else ""))
    if hf is not None:
        import torch

        with torch.inference_mode():
            theirs = transformers_tasks(hf, s, [int(k.split()[1]) for k in prefill_names])
            for task in theirs.values():
                task()
            groups["transformers"] = theirs
            runs = round_robin(groups, s.repeats)
    else:
        runs = round_robin(groups, s.repeats)
    med = {g: {k: float(np.median(v)) for k, v in per.items()} for g, per in runs.items()}
    best = {g: {k: float(np.min(v)) for k, v in per.items()} for g, per in runs.items()}
    del probe_w

    n_new = min(s.decode_tokens, cfg.n_ctx - DECODE_PROMPT)
    npy = {"prefill_ms": {int(k.split()[1]): med["numpy"][k] * 1e3 for k in prefill_names},
           "decode_tok_s": n_new / med["numpy"]["decode"], "decode_tokens": n_new,
           # The fastest run: on a machine shared with other jobs, the closest to what the code can do.
           "best": {"decode_tok_s": n_new / best["numpy"]["decode"],
                    "prefill_ms": {int(k.split()[1]): best["numpy"][k] * 1e3 for k in prefill_names}}}
    npy["trace"] = {"tokens": min(s.trace_tokens, cfg.n_ctx), "logits_ms": med["numpy"]["logits"] * 1e3,
                    "trace_ms": med["numpy"]["trace"] * 1e3,
                    "overhead_pct": 100 * (med["numpy"]["trace"] / med["numpy"]["logits"] - 1)}
    result["numpy"] = npy
    bw = (n_bytes // (4 * 4096)) * 4096 * 4 / med["bandwidth"]["decode"]
    bw_best = (n_bytes // (4 * 4096)) * 4096 * 4 / best["bandwidth"]["decode"]
    per_token = weight_bytes_per_token(m)
    result["bandwidth"] = {"gb_s": bw / 1e9, "matrix_mb": n_bytes / 1e6, "weights_mb_per_token": per_token / 1e6,
                           "decode_ceiling_tok_s": bw / per_token,
                           "decode_pct_of_ceiling": 100 * npy["decode_tok_s"] / (bw / per_token),
                           "best_gb_s": bw_best / 1e9,
                           "best_decode_pct_of_best_ceiling": 100 * npy["best"]["decode_tok_s"] / (bw_best / per_token)}
    if hf is not None:
        import torch

        th = result["transformers"]
        th |= {"torch": torch.__version__, "threads": torch.get_num_threads(),
               "attn": getattr(hf.config, "_attn_implementation", "?"),
               "prefill_ms": {int(k.split()[1]): med["transformers"][k] * 1e3 for k in prefill_names},
               "decode_tok_s": n_new / med["transformers"]["decode"],
               "best": {"decode_tok_s": n_new / best["transformers"]["decode"],
                        "prefill_ms": {int(k.split()[1]): best["transformers"][k] * 1e3 for k in prefill_names}}}
        result["ratios"] = {
            "prefill_time": {n: npy["prefill_ms"][n] / th["prefill_ms"][n] for n in npy["prefill_ms"]},
            "decode_speed": npy["decode_tok_s"] / th["decode_tok_s"],
        }
        result["peak_rss_mb_with_transformers"] = peak_rss_mb()
    return result


def format_table(r: dict[str, Any]) -> str:
    """The result as a plain-text table (no rich: the CLI prints it as is)."""
    mach, mod, npy, bw = r["machine"], r["model"], r["numpy"], r["bandwidth"]
    hf = r.get("transformers") or {}
    have_hf = "error" not in hf and bool(hf)
    lines = [
        f"fwdtui bench: {mod['name']} ({mod['family']}, {mod['n_layer']} layers, n_embd {mod['n_embd']}, "
        f"{mod['n_params'] / 1e6:.1f}M params, float32)",
        f"machine: {mach['cpu']}, {mach['cpu_count']} cpus; BLAS {mach.get('blas')} with {mach['threads']} threads "
        f"({mach['threads_from']}); numpy {mach['numpy']}",
    ]
    if mach.get("env"):
        lines.append("env: " + " ".join(f"{k}={v}" for k, v in sorted(mach["env"].items())))
    lines.append("")
    head = f"{'':34s}{'fwdtui (numpy)':>16s}"
    if have_hf:
        head += f"{'transformers':>16s}{'ratio':>10s}"
    lines.append(head)

    def row(label: str, ours: str, theirs: str = "", ratio: str = "") -> None:
        text = f"{label:34s}{ours:>16s}"
        if have_hf:
            text += f"{theirs:>16s}{ratio:>10s}"
        lines.append(text)

    first = f" (first of runs {r['load_first_s']:.3f} s)" if "load_first_s" in r else ""
    row("load" + first, f"{r['load_s']:.3f} s", f"{hf['load_s']:.2f} s" if have_hf else "")
    for n, ms in npy["prefill_ms"].items():
        theirs = hf["prefill_ms"].get(n) if have_hf else None
        row(f"prefill {n} tokens", f"{ms:.1f} ms", f"{theirs:.1f} ms" if theirs else "",
            f"{ms / theirs:.2f}x" if theirs else "")
    row(f"decode ({npy['decode_tokens']} new, KV cache)", f"{npy['decode_tok_s']:.1f} tok/s",
        f"{hf['decode_tok_s']:.1f} tok/s" if have_hf else "",
        f"{npy['decode_tok_s'] / hf['decode_tok_s']:.2f}x" if have_hf else "")
    t = npy["trace"]
    row(f"logits, {t['tokens']} tokens", f"{t['logits_ms']:.1f} ms")
    row(f"full Trace, {t['tokens']} tokens", f"{t['trace_ms']:.1f} ms")
    row("Trace overhead", f"{t['overhead_pct']:+.0f}%")
    lines.append("")
    lines.append(f"memory bandwidth ({mach['threads']}-thread matrix-vector, {bw['matrix_mb']:.0f} MB matrix): "
                 f"{bw['gb_s']:.1f} GB/s")
    lines.append(f"weights read per decoded token: {bw['weights_mb_per_token']:.0f} MB -> decode ceiling "
                 f"{bw['decode_ceiling_tok_s']:.1f} tok/s; fwdtui reaches {bw['decode_pct_of_ceiling']:.0f}%")
    if "best" in npy:
        text = (f"fastest runs (a shared machine's quiet moments): decode {npy['best']['decode_tok_s']:.1f} tok/s"
                f" = {bw['best_decode_pct_of_best_ceiling']:.0f}% of {bw['best_gb_s']:.1f} GB/s")
        if have_hf:
            text += f"; transformers {hf['best']['decode_tok_s']:.1f} tok/s"
        lines.append(text)
    lines.append(f"peak memory (numpy part, getrusage): {r['peak_rss_mb']:.0f} MB")
    if hf and not have_hf:
        lines.append(f"transformers: {hf['error']}")
    elif have_hf:
        lines.append(f"transformers: torch {hf['torch']}, {hf['threads']} threads, attention '{hf['attn']}'; "
                     "prefill ratio = our time / theirs, decode ratio = our speed / theirs")
    return "\n".join(lines)


def main(args) -> int:
    """Entry point of `fwdtui bench` (args from the CLI's parser)."""
    from fwdtui.errors import FwdtuiError

    progress = None if args.json else (lambda msg: print(f"  ... {msg}", file=sys.stderr, flush=True))
    threads = getattr(args, "threads", None)
    try:
        with blas_threads(threads):
            result = run_bench(args.model, compare=args.compare, quick=args.quick, progress=progress)
    except FwdtuiError as err:
        print(str(err), file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print(format_table(result))
    return 0
