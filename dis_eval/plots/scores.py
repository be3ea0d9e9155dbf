"""Score plots for ``dis-eval compare``: scores per configuration, and score against beta / lambda.

Both take ``dis_eval.results.long_scores``' frame (one row per run and score, columns
``dis_eval.results.tables.LONG_COLUMNS``): each configuration's scores with one point per seed
(and its mean ± sd), and score against beta / lambda per model and training data.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from dis_eval.plots.common import save_figure


def plot_scores_by_config(long: pd.DataFrame, stem: str | Path, scores: Sequence[str]) -> list[Path]:
    """``long`` has columns config (label), score, value, seed: one panel per score, one row
    of points per configuration (each seed a point), black bars mean ± sd (ddof=1)."""
    configs = list(dict.fromkeys(long["config"]))
    counts = long.drop_duplicates(["config", "run"]).groupby("config").size()
    labels = {c: f"{c}  (n={int(counts.get(c, 0))})" for c in configs}
    n = len(scores)
    ncols = min(3, n)  # wrap: many scores side by side would make an unreadable strip
    nrows = -(-n // ncols)
    longest = max(len(v) for v in labels.values())
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols + 0.09 * longest + 0.5,
                                                    nrows * (0.42 * len(configs) + 1.2) + 0.4),
                             squeeze=False, sharey=True)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    data = long.assign(label=long["config"].map(labels))
    order = [labels[c] for c in configs]
    for ax, score in zip(axes.flat, scores, strict=False):
        sub = data[data["score"] == score]
        sns.stripplot(data=sub, y="label", x="value", order=order, ax=ax, hue="label", hue_order=order,
                      palette="tab10", legend=False, size=6, jitter=0.15, alpha=0.85, orient="h")
        stats = sub.groupby("label")["value"].agg(["mean", "std"])
        for i, lab in enumerate(order):
            if lab in stats.index:
                m, sd = stats.loc[lab]
                ax.errorbar([m], [i], xerr=[0 if np.isnan(sd) else sd], fmt="|", color="black", ms=14,
                            capsize=4, lw=1.5)
        ax.set_xlabel(score)
        ax.set_ylabel("")
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(axis="y", labelsize=8)
    fig.suptitle("scores per configuration: points are seeds; black: mean ± sd (ddof=1)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, stem)


def plot_score_vs_param(long: pd.DataFrame, stem: str | Path, scores: Sequence[str], param: str,
                        param_label: str) -> list[Path]:
    """``long`` has columns model, data, ``param``, score, value: one panel per score, x the
    parameter, one line (mean over seeds, ± sd) per (model, data), seeds as points."""
    n = len(scores)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n + 0.5, 3.4), squeeze=False)
    # Colour by model, line style by data set (solid: full grid; dashed, dotted: subsets).
    groups = sorted(set(zip(long["model"], long["data"], strict=True)), key=lambda g: (g[0], g[1] != "full", g[1]))
    models = sorted(set(long["model"]))
    colours = dict(zip(models, sns.color_palette("tab10", len(models)), strict=True))
    datas = sorted(set(long["data"]), key=lambda d: (d != "full", d))
    styles = dict(zip(datas, ["-", "--", ":", "-."] * (len(datas) // 4 + 1), strict=False))
    for ax, score in zip(axes[0], scores, strict=True):
        sub = long[long["score"] == score]
        for key in groups:
            g = sub[(sub["model"] == key[0]) & (sub["data"] == key[1])]
            if g.empty:
                continue
            stats = g.groupby(param)["value"].agg(["mean", "std"]).sort_index()
            label = f"{key[0]} ({key[1]})"
            ax.errorbar(stats.index, stats["mean"], yerr=stats["std"].fillna(0), marker="o", capsize=3,
                        color=colours[key[0]], ls=styles[key[1]], label=label)
            ax.scatter(g[param], g["value"], color=colours[key[0]], alpha=0.4, s=14)
        ax.set_xlabel(param_label)
        ax.set_ylabel(score)
        ax.set_title(f"{score} vs {param_label}", fontsize=9)
        ax.grid(alpha=0.3)
        xs = sorted(set(sub[param]))
        if len(xs) > 1 and min(xs) > 0 and max(xs) / min(xs) >= 8:
            ax.set_xscale("log", base=2)
        ax.set_xticks(xs)
        ax.set_xticklabels([f"{x:g}" for x in xs])
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper center", ncol=min(4, len(labels)), frameon=False, fontsize=8,
                   bbox_to_anchor=(0.5, 1.08))
    fig.tight_layout()
    return save_figure(fig, stem)
