"""The widgets' pure renderers: what they draw for known arrays."""

from __future__ import annotations

import numpy as np
import pytest
from rich.console import Console

from fwdtui.core import ops
from fwdtui.widgets.bar_chart import Bar, bar_string, render_bars
from fwdtui.widgets.code_panel import code_renderable, source_of
from fwdtui.widgets.heatmap import HeatmapData, describe_cell, render_heatmap
from fwdtui.widgets.layer_diagram import DiagramState, render_diagram
from fwdtui.widgets.palette import (
    DIVERGING,
    SEQUENTIAL,
    colour_index,
    colours_for,
    value_range,
    xterm,
)
from fwdtui.widgets.plots import SPARKS, line_plot, sparkline
from fwdtui.widgets.token_strip import layout, render_strip, token_piece, visible_text
from fwdtui.widgets.vector_strip import bin_extremes, render_vector, vector_stats


def plain(renderable, width: int = 100) -> str:
    console = Console(width=width, color_system=None, record=True, file=open("/dev/null", "w"))
    console.print(renderable, crop=True, overflow="crop", no_wrap=True)
    return console.export_text()


# --- palette ---------------------------------------------------------------------------------


def test_xterm_hex_matches_the_xterm_cube_and_grey_ramp() -> None:
    assert xterm(16) == "#000000"
    assert xterm(231) == "#ffffff"
    assert xterm(196) == "#ff0000"
    assert xterm(232) == "#080808"
    assert xterm(255) == "#eeeeee"
    with pytest.raises(ValueError):
        xterm(7)  # the 16 system colours depend on the terminal theme


def test_palettes_use_only_xterm_colours_so_256_colour_terminals_show_them_exactly() -> None:
    fixed = {xterm(i) for i in range(16, 256)}
    assert set(SEQUENTIAL) <= fixed
    assert set(DIVERGING) <= fixed


def test_colours_map_ends_and_middle() -> None:
    values = np.array([0.0, 0.5, 1.0, -5.0, 9.0])
    colours = colours_for(values, 0.0, 1.0, "sequential")
    assert colours[0] == SEQUENTIAL[0]
    assert colours[2] == SEQUENTIAL[-1]
    assert colours[3] == SEQUENTIAL[0] and colours[4] == SEQUENTIAL[-1]  # clipped
    assert colour_index(0.0, -1.0, 1.0, len(DIVERGING)) == len(DIVERGING) // 2


def test_diverging_range_is_symmetric_and_ignores_masked_cells() -> None:
    values = np.array([[-1.0, 3.0], [100.0, 0.5]])
    mask = np.array([[False, False], [True, False]])
    assert value_range(values, "diverging", mask) == (-3.0, 3.0)
    assert value_range(values, "sequential", mask) == (-1.0, 3.0)


# --- token strip -------------------------------------------------------------------------------


def test_visible_text_shows_whitespace_and_control_characters() -> None:
    assert visible_text(" a\n\tb\x00") == "·a↵→b^@"


def test_token_piece_marks_partial_utf8() -> None:
    whole = token_piece(5, " é".encode())
    part = token_piece(6, "é".encode()[:1])
    assert not whole.partial and whole.label == "·é"
    assert part.partial and part.label == "\\xc3"


def test_strip_shows_ids_under_labels_and_the_selected_token_detail() -> None:
    pieces = [token_piece(i, t.encode()) for i, t in [(464, "The"), (2068, " quick"), (7586, " brown")]]
    text = plain(render_strip(pieces, 60, 8, cursor=1, pinned=2), 60)
    lines = text.splitlines()
    assert lines[0].split() == ["The", "·quick", "·brown"]
    assert lines[1].split() == ["464", "2068", "*7586"]  # * marks the pinned token
    assert "#1 id 2068 ' quick'  bytes 20 71 75 69 63 6b (6)" in text
    assert "pinned #2 id 7586" in text


def test_long_prompt_pages_and_the_page_follows_the_cursor() -> None:
    pieces = [token_piece(i, f"tok{i}".encode()) for i in range(200)]
    first = plain(render_strip(pieces, 40, 6, cursor=0), 40)
    last = plain(render_strip(pieces, 40, 6, cursor=199), 40)
    lay = layout(pieces, 40, 2, 199)
    assert f"page 1/{lay.n_pages}" in first and lay.n_pages > 10
    assert f"page {lay.n_pages}/{lay.n_pages}" in last
    assert "tok199" in last and "tok199" not in first


# --- heatmap ------------------------------------------------------------------------------------


def _causal(n: int) -> tuple[np.ndarray, np.ndarray]:
    mask = np.triu(np.ones((n, n), dtype=bool), 1)
    pattern = np.where(mask, 0.0, 1.0)
    return pattern / pattern.sum(1, keepdims=True), mask


def test_small_heatmap_has_labelled_rows_masked_cells_and_the_selected_value() -> None:
    pattern, mask = _causal(4)
    data = HeatmapData(pattern, ("The", "cat", "sat", "on"), ("The", "cat", "sat", "on"), mask=mask,
                       row_name="query", col_name="key")
    text = plain(render_heatmap(data, 60, 14, cursor=(2, 1)), 60)
    rows = [line for line in text.splitlines() if line.strip().startswith(("The", "cat", "sat", "on"))]
    assert [r.split()[0] for r in rows] == ["The", "cat", "sat", "on"]
    assert sum(r.count("·") for r in rows) == int(mask.sum())  # every masked cell drawn as ·
    assert "query 2 'sat' → key 1 'cat'  0.333" in text
    assert "masked: the future" in text


def test_large_heatmap_uses_half_blocks_and_a_window_around_the_cursor() -> None:
    pattern, mask = _causal(200)
    text = plain(render_heatmap(HeatmapData(pattern, mask=mask), 80, 20, cursor=(150, 10)), 80)
    assert "▀" in text
    assert "2 rows per line" in text
    assert "showing" in text


def test_describe_cell_reports_masked_cells_as_masked() -> None:
    pattern, mask = _causal(3)
    data = HeatmapData(pattern, mask=mask)
    assert "masked" in describe_cell(data, 0, 2).plain
    assert "1.000" in describe_cell(data, 0, 0).plain


# --- bars, vectors, diagram, plots ---------------------------------------------------------------


def test_bar_string_uses_eighths() -> None:
    assert bar_string(0.5, 10) == "█████     "
    assert bar_string(1 / 16, 2) == "▏ "
    assert bar_string(2.0, 3) == "███"


def test_bars_mark_the_chosen_and_the_cut_tokens() -> None:
    bars = [Bar(" Paris", 0.6, chosen=True), Bar(" London", 0.3), Bar(" the", 0.1, excluded=True)]
    lines = plain(render_bars(bars, 70), 70).splitlines()
    assert "Paris" in lines[0] and "60.0%" in lines[0] and "◀ chosen" in lines[0]
    assert "cut" in lines[2] and "chosen" not in lines[1]


def test_vector_binning_keeps_a_spike_and_stats_are_exact() -> None:
    vec = np.zeros(768)
    vec[300] = -9.0
    binned = bin_extremes(vec, 64)
    assert binned.shape == (64,) and binned.min() == -9.0
    stats = vector_stats(vec)
    assert stats.min == -9.0 and stats.argmin == 300 and stats.norm == pytest.approx(9.0)
    text = plain(render_vector(vec, 80, "x"), 80)
    assert "‖x‖ 9.00" in text and "min -9.000 @300" in text


def test_layer_diagram_names_the_family_and_lights_the_layer() -> None:
    gpt = plain(render_diagram(DiagramState("gpt2", 12, "attn", 3), 100), 100)
    llama = plain(render_diagram(DiagramState("llama", 30, "mlp", 29), 100), 100)
    assert "LayerNorm" in gpt and "positions" in gpt and "layer 3 of 0-11" in gpt
    assert "RMSNorm" in llama and "SwiGLU" in llama and "rotary" in llama and "layer 29 of 0-29" in llama
    blocks = gpt.splitlines()[1]
    assert blocks.count("■") == 3 and blocks.count("▣") == 1  # three done, one current


def test_sparkline_and_line_plot() -> None:
    line = sparkline(np.arange(10.0), 10).plain
    assert len(line) == 10 and line[0] == SPARKS[0] and line[-1] == SPARKS[-1]
    assert list(line) == sorted(line)  # rising values, rising blocks
    plot = plain(line_plot([3.0, 2.0, 1.5, 1.2, 1.0], 30, 5, "loss"), 30)
    assert "loss" in plot and "3" in plot.splitlines()[1] and "1" in plot.splitlines()[-1]


def test_code_panel_shows_the_real_source_with_file_and_line() -> None:
    source, location, first = source_of(ops.attention)
    assert source.startswith("def attention")
    assert location.startswith("fwdtui/core/ops.py:") and location.endswith("attention")
    text = plain(code_renderable([ops.attention]), 120)
    assert "def attention" in text and str(first) in text
