"""The claims table as a figure: each claim's effect with its 95% interval against its threshold."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

COLOURS = {"holds": "#1b7837", "contradicted": "#b2182b", "inconclusive": "#878787", "not measured": "#d9d9d9"}


def plot_claims(table: pd.DataFrame, path: str | Path) -> Path:
    """One row per claim, top to bottom in table order; the threshold as a tick on each row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    n = len(table)
    fig, ax = plt.subplots(figsize=(8.5, 0.42 * n + 1.4))
    for i, r in enumerate(table.itertuples(index=False)):
        y = n - 1 - i
        threshold = float(r.claimed.split()[1])
        ax.plot([threshold, threshold], [y - 0.3, y + 0.3], color="black", lw=1)
        if not math.isnan(r.effect):
            colour = COLOURS[r.verdict]
            ax.plot([r.ci_low, r.ci_high], [y, y], color=colour, lw=2.5)
            ax.plot([r.effect], [y], "o", color=colour)
    ax.set_yticks(range(n))
    ax.set_yticklabels([f"{r.claim} ({r.verdict})" for r in table.itertuples(index=False)][::-1], fontsize=8)
    ax.axvline(0.0, color="black", lw=0.5, ls=":")
    ax.set_xlabel("effect (AP points), 95% two-level bootstrap interval; black tick: the claim's threshold")
    ax.set_title("GLIP's claims on the synthetic world", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
