"""Figures (matplotlib, headless: the Agg backend is selected here, before pyplot is imported anywhere).

Each plotting function saves one figure with ``save_figure``, through ``atomic_path``.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..files import atomic_path  # noqa: E402


def save_figure(fig, path) -> Path:
    """Save ``fig`` to ``path`` (format from the suffix, PNG without one) atomically, and close it."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return path
