"""Figures: the numbers behind them (Fig. 4 aggregation, MI gaps, rates, traversal ranges) and
that every figure file is written and non-empty. Synthetic codes and a synthetic decoder keep
these fast; tests/test_main_job.py draws the same figures from really trained runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dis_eval import plots
from dis_eval.data.factors import FACTOR_SIZES, all_classes
from dis_eval.metrics.mig import mig_from_codes
from dis_eval.plots.traversals import traverse


def _codes(classes: np.ndarray, seed: int = 0) -> np.ndarray:
    """Latent 0 ~ posX, 1 ~ posY, 2 ~ scale + heart offset, 3 ~ cos(orientation); 4, 5 noise."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 0.02, size=(len(classes), 6))
    z[:, 0] += classes[:, 3] / 31 * 2 - 1
    z[:, 1] += classes[:, 4] / 31 * 2 - 1
    z[:, 2] += classes[:, 1] / 5 + 0.3 * (classes[:, 0] == 2)
    z[:, 3] += np.cos(classes[:, 2] / 40 * 2 * np.pi)
    return z


def _decode(z: np.ndarray) -> np.ndarray:
    """A blob at (z0, z1) of radius growing with z2: pixel probabilities (M, 64, 64)."""
    yy, xx = np.mgrid[0:64, 0:64]
    cx, cy = 32 + 16 * z[:, 0], 32 + 16 * z[:, 1]
    r = 3 + 5 * np.clip(z[:, 2], 0, 1.5)
    d2 = (xx[None] - cx[:, None, None]) ** 2 + (yy[None] - cy[:, None, None]) ** 2
    return (d2 < r[:, None, None] ** 2).astype(np.float32)


def _nonempty(paths: list[Path], suffixes: set[str]) -> None:
    assert {p.suffix for p in paths} == suffixes
    for p in paths:
        assert p.is_file() and p.stat().st_size > 1000, p


def test_factor_means_full_grid_equals_reshape_mean() -> None:
    classes = all_classes()
    z = np.random.default_rng(1).normal(size=(len(classes), 2))
    fm = plots.factor_means(classes, z)
    grid = z.reshape(*FACTOR_SIZES, 2)  # valid only because this is the full grid in official order
    np.testing.assert_allclose(fm.pos[1], grid.mean(axis=(0, 1, 2))[..., 1], atol=1e-12)
    np.testing.assert_allclose(fm.scale[0], grid.mean(axis=(2, 3, 4))[..., 0], atol=1e-12)
    np.testing.assert_allclose(fm.orientation[1], grid.mean(axis=(1, 3, 4))[..., 1], atol=1e-12)
    np.testing.assert_allclose(fm.variance, z.var(axis=0, ddof=1))


def test_factor_means_subset_averages_rows_present() -> None:
    rng = np.random.default_rng(2)
    classes = all_classes()[np.sort(rng.choice(737_280, 3000, replace=False))]
    z = rng.normal(size=(3000, 1))
    fm = plots.factor_means(classes, z)
    df = pd.DataFrame({"shape": classes[:, 0], "scale": classes[:, 1], "x": classes[:, 3], "y": classes[:, 4], "z": z[:, 0]})
    expect = df.groupby(["shape", "scale"])["z"].mean()
    for (s, c), v in expect.items():
        assert fm.scale[0, s, c] == pytest.approx(v)
    pos = df.groupby(["x", "y"])["z"].mean()
    assert np.isnan(fm.pos[0]).sum() == 32 * 32 - len(pos)  # absent cells are NaN, not 0
    (x, y), v = next(iter(pos.items()))
    assert fm.pos[0, x, y] == pytest.approx(v)


def test_mi_gap_matches_mig_metric() -> None:
    rng = np.random.default_rng(3)
    classes = all_classes()[rng.integers(0, 737_280, 4000)]
    z = _codes(classes)
    res = plots.mi_matrix(z, classes, num_bins=20)
    ref = mig_from_codes(z, classes, 20)
    np.testing.assert_allclose(res.gap, ref["mig_per_factor"], rtol=1e-12)
    assert res.mig == pytest.approx(ref["discrete_mig"])
    assert res.top2[3, 0] == 0 and res.top2[4, 0] == 1 and res.top2[1, 0] == 2  # posX, posY, scale


def test_rate_per_latent_from_cached_codes() -> None:
    from dis_eval.models import rate_per_latent

    aux = np.log(np.array([[0.5, 0.9], [0.25, 0.9]]))
    # Echo: rate_j = -E[log s_j]
    np.testing.assert_allclose(rate_per_latent(np.zeros((2, 2)), aux, "echo"), [(np.log(2) + np.log(4)) / 2, -np.log(0.9)])
    mu, logvar = np.array([[1.0, 0.0]]), np.array([[0.0, np.log(0.5)]])
    np.testing.assert_allclose(rate_per_latent(mu, logvar, "vae"), [0.5, 0.5 * (0.5 - np.log(0.5) - 1)])


def test_traversal_values_and_decoding_order() -> None:
    z = np.random.default_rng(4).uniform(-1, 1, size=(10_001, 3))
    vals = plots.traversal_values(z, 5, 0.0, 1.0)
    np.testing.assert_allclose(vals[:, 0], z.min(axis=0))
    np.testing.assert_allclose(vals[:, 2], np.median(z, axis=0))
    seen = []
    traverse(lambda c: seen.append(c.copy()) or np.zeros((len(c), 64, 64)), np.zeros(3), vals, [2, 0])
    codes = seen[0]
    np.testing.assert_allclose(codes[:5, 2], vals[2])  # first row varies latent 2 ...
    assert np.all(codes[:5, [0, 1]] == 0)  # ... with the others at the seed's code
    np.testing.assert_allclose(codes[5:, 0], vals[0])


def test_every_figure_written(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    classes = all_classes()[np.sort(rng.choice(737_280, 5000, replace=False))]
    z = _codes(classes)
    _nonempty(plots.plot_latent_vs_factor(classes, z, tmp_path / "fig4", title="t"), {".png", ".pdf"})
    paths, res = plots.plot_mi_heatmap(z[:2000], classes[:2000], tmp_path / "mi", inactive=[4, 5])
    _nonempty(paths, {".png", ".pdf"})
    rates = np.array([3.0, 2.0, 1.0, 0.5, 0.01, 0.01])
    latents = plots.LatentSummary.from_codes(z, rates, num_values=5)
    trav = plots.plot_traversals(_decode, latents, plots.TraversalSeeds(z[:1], _decode(z[:1])), tmp_path)
    _nonempty(trav, {".png", ".pdf", ".gif"})
    gif = Image.open(next(p for p in trav if p.suffix == ".gif"))
    assert gif.n_frames == 5 + 3  # up and back down without repeating the ends
    avg = plots.average_reconstruction(_decode, lambda k: z[:4] + 0.1 * k, 3)
    np.testing.assert_allclose(avg, np.mean([_decode(z[:4] + 0.1 * k) for k in range(3)], axis=0))
    _nonempty(plots.plot_reconstructions(_decode(z[:4]), _decode(z[:4]), tmp_path / "rec",
                                         average=plots.NoisyAverage(avg, 3)), {".png", ".pdf"})
    # No active latent: the figure says so and still shows the largest-variance latents.
    _nonempty(plots.plot_latent_vs_factor(classes, z * 1e-3, tmp_path / "fig4_none"), {".png", ".pdf"})


def test_score_plots_written(tmp_path: Path) -> None:
    long = pd.DataFrame({
        "config": ["a", "a", "b", "b"] * 2, "run": [f"r{i}" for i in range(4)] * 2, "seed": [0, 1] * 4,
        "model": ["echo", "echo", "vae", "vae"] * 2, "data": ["full"] * 8, "beta": [1.0, 1.0, 4.0, 4.0] * 2,
        "lambda": [0.0] * 8, "score": ["mig"] * 4 + ["factor_vae"] * 4, "value": [0.1, 0.2, 0.3, 0.35, 0.8, 0.7, 0.6, 0.65],
    })
    _nonempty(plots.plot_scores_by_config(long, tmp_path / "by", ["mig", "factor_vae"]), {".png", ".pdf"})
    _nonempty(plots.plot_score_vs_param(long, tmp_path / "vs", ["mig", "factor_vae"], "beta", "beta"), {".png", ".pdf"})
