"""Training curves (loss and metric per epoch) as a PNG, drawn with matplotlib's Agg backend."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def plot_curves(history: dict[str, list[float]], metric_name: str, path: Path) -> Path:
    epochs = range(1, len(history["train_loss"]) + 1)
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((ax_loss, "loss", "loss"), (ax_metric, "metric", metric_name)):
        ax.plot(epochs, history[f"train_{key}"], label="train")
        if history[f"val_{key}"]:  # no validation split when the last epoch is kept
            ax.plot(epochs[: len(history[f"val_{key}"])], history[f"val_{key}"], label="val")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    # fixed margins: tight_layout draws the figure once more to measure it, a quarter of the plot's time
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.12, top=0.97, wspace=0.25)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
