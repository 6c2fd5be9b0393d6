"""Batching: static against continuous, simulated with the measured cost of a pass of the loaded model."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.binding import Binding

from fwdtui.chapters.base import Chapter, register
from fwdtui.chapters.engine._common import ACCENT, DIM, Picture, bar, colour, fmt_seconds, heading, note
from fwdtui.core import engine_lab
from fwdtui.session import Snapshot
from fwdtui.widgets.palette import cell_style

BATCH_SIZES = (2, 4, 8)
N_REQUESTS = 12
ROWS = (1, 2, 4, 8, 16, 32, 64)  # rows per timed pass; larger steps are extrapolated from the last two
ROUNDS = 3  # timing rounds (each the best of 2 passes per row count)
PROMPT_RANGE = (8, 48)
OUTPUT_RANGE = (4, 96)
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class Simulated:
    """Both policies on one request mix and batch size."""

    batch_size: int
    seed: int
    requests: tuple[engine_lab.Request, ...]
    static: engine_lab.BatchSim
    continuous: engine_lab.BatchSim


@dataclass(frozen=True)
class BatchingResult:
    measured: engine_lab.PassCost  # as timed
    cost: engine_lab.PassCost  # made non-decreasing: what the simulation uses
    sims: Simulated
    model_name: str


def simulate(cost: engine_lab.PassCost, batch_size: int, seed: int) -> Simulated:
    """The same seeded requests through static and continuous batching."""
    requests = engine_lab.request_mix(N_REQUESTS, seed, prompt=PROMPT_RANGE, output=OUTPUT_RANGE)
    return Simulated(batch_size, seed, requests, engine_lab.simulate_static(requests, batch_size, cost),
                     engine_lab.simulate_continuous(requests, batch_size, cost))


@register
class BatchingChapter(Picture, Chapter):
    ID = "engine.batching"
    PICTURE = "batching"
    SECTION = "engine"
    TITLE = "Batching"
    SUMMARY = "Static against continuous batching, simulated with this model's measured step costs."
    EXPLANATION = """
A decode step of one request reads every weight to produce one token. Run several requests in the
same pass and the weights are read once for all of them: a step of 8 rows costs little more than a
step of 1 (measured below on the loaded model). That is **batching**. **Static** batching takes a
group of requests and runs it until the longest answer is finished: slots whose request is done
keep computing padding, and newcomers wait for the whole group. **Continuous** (in-flight) batching
decides again at every step: a finished request leaves, a waiting one takes its slot at once, its
prefill riding along with the others' decode rows. Below, a **simulation** of both on the same
requests, each step costing what a real pass of this model took. `b` batch size, `s` another mix.
"""
    CODE_FUNCTIONS = (engine_lab.simulate_continuous, engine_lab.simulate_static, engine_lab.measure_pass_cost,
                      engine_lab.request_mix, engine_lab.fastest, engine_lab.slot_timeline)
    BINDINGS = [
        Binding("b", "batch", "Batch size", tooltip="Batches of 2, 4 or 8 requests"),
        Binding("s", "seed", "Request mix", tooltip="Another seeded mix of prompt and answer lengths"),
    ]

    def __init__(self, session=None) -> None:
        super().__init__(session)
        self.batch_index = 1
        self.seed = 0
        # after a key press: a newer simulation, and the costs it used (it holds while they are the result's)
        self.sims: tuple[engine_lab.PassCost, Simulated] | None = None

    def compose_visual(self):
        yield from self.picture_area(focusable=True)

    def compute(self, snapshot: Snapshot) -> BatchingResult:
        model = snapshot.require_model()
        rounds = []
        for k in range(ROUNDS):  # whole rounds one after another, then the fastest of each row count
            if snapshot.cancelled():
                break
            progress = (lambda f, text, k=k: snapshot.progress((k + f) / ROUNDS, f"round {k + 1} of {ROUNDS}: {text}"))
            rounds.append(engine_lab.measure_pass_cost(model, ROWS, progress, snapshot.cancelled))
        if not rounds or len(rounds[-1].rows) < len(ROWS):
            return None  # cancelled: a newer computation follows
        measured = engine_lab.fastest(rounds)
        cost = engine_lab.monotone_cost(measured)
        return BatchingResult(measured, cost, simulate(cost, BATCH_SIZES[self.batch_index], self.seed),
                              model.info.name)

    def draw(self, result: BatchingResult | None) -> None:
        if result is None:
            return
        sims = self.sims[1] if self.sims is not None and self.sims[0] is result.cost else result.sims
        self.update_breadcrumb(f"batch {sims.batch_size} · mix {sims.seed}")
        self.picture_canvas().show(lambda width: self._picture(result, sims, width))

    def _resimulate(self) -> None:
        if self.result is None:
            return
        cost, batch_size, seed = self.result.cost, BATCH_SIZES[self.batch_index], self.seed
        self.run_in_thread(lambda: (cost, simulate(cost, batch_size, seed)), self._simulated, group="simulate")

    def _simulated(self, sims: tuple[engine_lab.PassCost, Simulated]) -> None:
        self.sims = sims
        self.redraw()

    def action_batch(self) -> None:
        self.batch_index = (self.batch_index + 1) % len(BATCH_SIZES)
        self._resimulate()

    def action_seed(self) -> None:
        self.seed += 1
        self._resimulate()

    # --- the picture -------------------------------------------------------------------------------
    def _picture(self, r: BatchingResult, s: Simulated, width: int) -> Text:
        out = Text(no_wrap=True, overflow="crop")
        out.append_text(self._costs(r, width))
        out.append("\n")
        out.append_text(heading(f"Simulation: {len(s.requests)} requests (mix {s.seed}), batches of {s.batch_size}"))
        # non-breaking spaces keep each request's letter with its lengths when the line wraps
        mix = "  ".join(f"{LETTERS[i]}\u00a0{q.prompt_len}+{q.output_len}" for i, q in enumerate(s.requests))
        out.append_text(note(f"prompt + answer tokens: {mix}", width))
        t_end = max(s.static.total_seconds, s.continuous.total_seconds)
        for sim in (s.static, s.continuous):
            out.append_text(self._timeline(sim, t_end, width))
        label = 8
        axis_w = max(1, width - label - 1)
        end_txt = f"{fmt_seconds(t_end)} (simulated)"
        out.append(" " * label + "0" + end_txt.rjust(max(0, axis_w - 1)) + "\n", style=DIM)
        out.append(" " * label)
        out.append(" A ", style=cell_style("#000000", colour(0)))
        out.append(" request  ", style=DIM)
        out.append("▒▒", style=cell_style(colour(0)))
        out.append(" its prefill  ", style=DIM)
        out.append("··", style=DIM)
        out.append(" idle/padding\n", style=DIM)
        out.append("\n")
        out.append_text(self._figures(s, width))
        return out

    def _costs(self, r: BatchingResult, width: int) -> Text:
        out = Text(no_wrap=True, overflow="crop")
        out.append_text(heading(f"Measured on {r.model_name}: one forward pass over n token rows (best of 6)"))
        cells = [(n, t) for n, t in zip(r.measured.rows, r.measured.seconds)]
        col = 9
        fit = max(1, (width - 9) // col)
        shown = cells[:fit]
        out.append("rows    " + "".join(f"{n:>{col}}" for n, _ in shown) + "\n", style=DIM)
        out.append("measured" + "".join(f"{fmt_seconds(t):>{col}}" for _, t in shown) + "\n")
        used = r.cost.seconds[:len(shown)]
        if used != r.measured.seconds[:len(shown)]:
            out.append("used    " + "".join(f"{fmt_seconds(t):>{col}}" for t in used) + "\n", style=ACCENT)
        out.append("per row " + "".join(f"{fmt_seconds(t / n):>{col}}" for (n, _), t in zip(shown, used)) + "\n",
                   style=DIM)
        one, eight = r.cost(1), r.cost(8)
        out.append_text(note(f"8 rows in one pass cost {eight / max(one, 1e-12):.1f}x one row (not 8x): the weights "
                             "are read once per pass, whatever the number of rows. The simulation reads each step's "
                             "cost off these times; where a larger pass timed faster (other work on this machine "
                             "slowed a smaller one), it uses the larger pass's time for both.", width))
        return out

    def _timeline(self, sim: engine_lab.BatchSim, t_end: float, width: int) -> Text:
        """One line per batch slot; each column an instant of simulated time."""
        out = Text(no_wrap=True, overflow="crop")
        label = 8
        n_cols = max(1, width - label - 1)
        occupant, prefill = engine_lab.slot_timeline(sim, n_cols, t_end)
        name = "Static batching" if sim.policy == "static" else "Continuous batching"
        out.append(name, style="bold")
        out.append(f"  · {len(sim.steps)} steps · done at {fmt_seconds(sim.total_seconds)}"
                   f" · {sim.utilisation:.0%} of slot-steps useful\n", style=DIM)
        for j in range(sim.batch_size):
            out.append(f"slot {j:<2}│", style=DIM)
            for c in range(n_cols):
                i = int(occupant[j, c])
                if i == -2:
                    out.append(" ")
                elif i == -1:
                    out.append("·", style=DIM)
                else:
                    starts = c == 0 or occupant[j, c - 1] != i
                    if prefill[j, c]:
                        out.append(LETTERS[i % 26] if starts else "▒", style=cell_style(colour(i), bold=starts))
                    else:
                        out.append(LETTERS[i % 26] if starts else " ", style=cell_style("#000000", colour(i)))
            out.append("\n")
        return out

    def _figures(self, s: Simulated, width: int) -> Text:
        """Utilisation, throughput and latency of both policies side by side, the better one bright."""
        out = Text(no_wrap=True, overflow="crop")
        a, b = s.static, s.continuous
        rows = (
            ("slot utilisation", a.utilisation, b.utilisation, "{:.0%}", True),
            ("throughput tok/s", a.throughput, b.throughput, "{:.1f}", True),
            ("mean time to finish", a.mean_latency, b.mean_latency, None, False),
            ("p90 time to finish", engine_lab.finish_percentile(a, 90), engine_lab.finish_percentile(b, 90), None,
             False),
            ("mean first token", float(sum(a.first_token) / len(a.first_token)),
             float(sum(b.first_token) / len(b.first_token)), None, False),
        )
        name_w, val_w = 20, 9
        bar_w = max(0, (width - name_w - 2 * val_w - 4) // 2)
        gap = bar_w + 2 if bar_w >= 3 else 0
        out.append(f"{'':<{name_w}}{'static':>{val_w}}{'':<{gap}}{'continuous':>{val_w}}"[:width] + "\n",
                   style=f"bold {DIM}")
        for title, x, y, fmt, higher_better in rows:
            vmax = max(x, y) or 1.0
            best_x = (x >= y) if higher_better else (x <= y)
            out.append(f"{title:<{name_w}}")
            for value, best in ((x, best_x), (y, not best_x)):
                txt = fmt.format(value) if fmt else fmt_seconds(value)
                out.append(f"{txt:>{val_w}}", style=f"bold {ACCENT}" if best else "")
                if bar_w >= 3:
                    out.append(" ")
                    out.append_text(bar(value, vmax, bar_w, ACCENT if best else DIM))
                    out.append(" ")
            out.append("\n")
        ratio = b.throughput / a.throughput if a.throughput else float("nan")
        out.append_text(note(f"Continuous batching served the same {a.n_output} tokens {ratio:.2f}x as fast here: "
                             "no padding rows and no slot left waiting for the slowest request of its group. Short "
                             "answers also finish sooner, since they never wait behind a long one (see p90). "
                             "This is a simulation: the requests are made up, the cost of each step is this "
                             "model's measured pass time.", width))
        return out
