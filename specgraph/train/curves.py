"""The run folder's per-epoch metrics: merged from Lightning's CSV logs, written as
``metrics.csv`` and drawn as ``curves.png`` (loss, and the task's headline metric, per epoch)."""

from __future__ import annotations

import csv
from pathlib import Path

EPOCH_KEYS = ("train_", "val_")


def epoch_metrics(log_root: Path) -> list[dict[str, float]]:
    """One row per epoch (1-based ``epoch``), from every ``version_*/metrics.csv`` under
    ``log_root`` in order, so that a resumed run's later logs replace the epochs they repeat."""
    rows: dict[int, dict[str, float]] = {}
    versions = sorted(log_root.glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[-1]))
    for path in versions:
        with open(path, newline="") as fh:
            for rec in csv.DictReader(fh):
                if not rec.get("epoch"):
                    continue
                epoch = int(float(rec["epoch"])) + 1
                row = rows.setdefault(epoch, {"epoch": epoch})
                for k, v in rec.items():
                    if k and k.startswith(EPOCH_KEYS) and v not in (None, ""):
                        row[k] = float(v)
    return [rows[e] for e in sorted(rows) if len(rows[e]) > 1]


def write_metrics(rows: list[dict[str, float]], path: Path) -> None:
    keys = ["epoch"] + sorted({k for r in rows for k in r if k != "epoch"})
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


def plot_curves(rows: list[dict[str, float]], path: Path, headline: str | None, title: str = "") -> bool:
    """Loss (train, val) and ``headline`` (e.g. "acc") per epoch; False when there is nothing to draw."""
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    panels = ["loss"] + ([headline] if headline and any(f"val_{headline}" in r or f"train_{headline}" in r
                                                        for r in rows) else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], panels):
        for split, style in (("train", "-o"), ("val", "-s")):
            points = [(r["epoch"], r[f"{split}_{metric}"]) for r in rows if f"{split}_{metric}" in r]
            if points:
                ax.plot(*zip(*points), style, label=split, markersize=3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
