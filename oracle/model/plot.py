"""The precision-recall curve as a PNG (matplotlib's Agg canvas: no display, no global state)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve

from oracle.model.evaluation import Evaluation


def plot_pr_curve(
    labels: npt.NDArray[np.bool_],
    scores_bp: npt.NDArray[np.int64],
    evaluation: Evaluation,
    path: Path,
    title: str,
) -> None:
    precision, recall, _ = precision_recall_curve(labels, scores_bp)
    figure = Figure(figsize=(6.0, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    auc = "n/a" if evaluation.pr_auc is None else f"{evaluation.pr_auc:.3f}"
    axes.step(recall, precision, where="post", label=f"PR curve (AP = {auc})")
    axes.scatter(
        [evaluation.recall],
        [evaluation.precision],
        color="red",
        zorder=3,
        label=f"threshold {evaluation.threshold_bp} bp (F1 = {evaluation.f1:.3f})",
    )
    axes.set_xlabel("recall")
    axes.set_ylabel("precision")
    axes.set_xlim(0.0, 1.0)
    axes.set_ylim(0.0, 1.05)
    axes.set_title(title)
    axes.legend(loc="lower left")
    axes.grid(alpha=0.3)
    figure.savefig(path, format="png")
