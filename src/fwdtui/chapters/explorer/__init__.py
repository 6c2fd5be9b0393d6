"""Section 9, the Architecture Explorer: published architectures side by side, and the loaded model live."""

from fwdtui.chapters.explorer import compare, live  # noqa: F401  (importing registers each chapter)
