"""Reusable terminal pictures of a Trace: token strip, heatmap, bars, vectors, layer diagram, plots, code,
and the canvas that draws a chapter's picture at its own size."""

from fwdtui.widgets.bar_chart import Bar, BarChart, render_bars
from fwdtui.widgets.canvas import Canvas
from fwdtui.widgets.code_panel import CodePanel, code_renderable
from fwdtui.widgets.heatmap import Heatmap, HeatmapData, render_heatmap
from fwdtui.widgets.layer_diagram import DiagramState, LayerDiagram, render_diagram
from fwdtui.widgets.plots import LinePlot, Sparkline, line_plot, sparkline
from fwdtui.widgets.token_strip import TokenPiece, TokenStrip, pieces_for, render_strip, token_piece
from fwdtui.widgets.vector_strip import VectorStrip, render_vector

__all__ = [
    "Bar", "BarChart", "Canvas", "CodePanel", "DiagramState", "Heatmap", "HeatmapData", "LayerDiagram",
    "LinePlot", "Sparkline", "TokenPiece", "TokenStrip", "VectorStrip", "code_renderable",
    "line_plot", "pieces_for", "render_bars", "render_diagram", "render_heatmap", "render_strip",
    "render_vector", "sparkline", "token_piece",
]
