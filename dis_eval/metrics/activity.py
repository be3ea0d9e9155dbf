"""Which latents are inactive, and the warnings a score carries when it leans on one.

A latent is *inactive* when its rate is within :data:`INACTIVE_RATE_NATS` of the least it can
be: for Echo the rate I(x; z_j) = -E[log s_j] is at least the floor -log r (r: the clip factor,
docs/echo.md, "The rate floor"), for a VAE the KL to the prior is at least 0. Such a latent
carries (almost) no information about the image, so the noisy sample the model decodes carries
nothing in it; its *mean* can still vary a little with the factors, and MIG's equal-width
histogram stretches that tiny spread over 20 bins, where it can look like information
(docs/metric-pitfalls.md, "Inactive latents under mean codes").

When a factor's best latent - by MIG's MI matrix (``top_latent_per_factor``) or by the
FactorVAE score's majority vote (``vote_latent_per_factor``) - is inactive, the score gets a
warning (:func:`inactive_warnings`). This module is the one owner of the threshold; the MI
heatmap marks inactive latents with it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# Rate (nats) above the floor below which a latent counts as inactive (one owner).
INACTIVE_RATE_NATS = 0.01

# Per metric: the result key naming each factor's best latent, and how it was chosen.
BEST_LATENT_KEYS: dict[str, tuple[str, str]] = {
    "mig": ("top_latent_per_factor", "largest mutual information (MIG's MI matrix)"),
    "factor_vae": ("vote_latent_per_factor", "most training votes (FactorVAE majority vote)"),
}


@dataclass(frozen=True)
class LatentActivity:
    """Per-latent rates (nats), the floor each could reach, where the rates came from, and the
    threshold above the floor that makes a latent active."""

    rates: tuple[float, ...]
    floor: float
    source: str
    threshold: float = INACTIVE_RATE_NATS

    @property
    def excess(self) -> np.ndarray:
        """Rate above the floor, per latent."""
        return np.asarray(self.rates, dtype=np.float64) - self.floor

    @property
    def inactive(self) -> list[int]:
        """Indices of the inactive latents."""
        return np.flatnonzero(self.excess < self.threshold).tolist()

    def as_dict(self) -> dict[str, Any]:
        return {"rates_nats": list(self.rates), "floor_nats": self.floor, "threshold_nats": self.threshold,
                "rule": "inactive when rate - floor < threshold", "source": self.source,
                "inactive_latents": self.inactive}


def rate_floor(family: str, clip: float | None) -> float:
    """The least rate a latent can have: Echo -log r, a VAE 0."""
    if family == "echo":
        if clip is None or not 0 < clip <= 1:
            raise ValueError(f"an Echo rate floor needs the clip factor r in (0, 1], got {clip!r}")
        return float(-np.log(clip))
    return 0.0


def activity_from_codes(mean: np.ndarray, aux: np.ndarray, family: str, clip: float | None) -> LatentActivity:
    """Rates per latent averaged over the encoded rows given (rows with NaN codes, not yet
    encoded, are left out): Echo -E[log s_j], a VAE's KL to N(0, 1)."""
    from dis_eval.models import rate_per_latent

    mean = np.asarray(mean)
    rows = np.isfinite(mean).all(axis=1) & np.isfinite(aux).all(axis=1)
    if not rows.any():
        raise ValueError("no encoded rows to compute rates from")
    rates = rate_per_latent(mean[rows], np.asarray(aux)[rows], family)
    return LatentActivity(tuple(float(r) for r in rates), rate_floor(family, clip),
                          f"codes: mean over {int(rows.sum())} encoded rows")


def activity_from_rates(rates: Sequence[float], family: str, clip: float | None, source: str) -> LatentActivity:
    """From rates already measured (a run's summary.json ``rate_per_dim``)."""
    return LatentActivity(tuple(float(r) for r in rates), rate_floor(family, clip), source)


def inactive_warnings(scores: Mapping[str, Mapping[str, Any]], activity: LatentActivity | None,
                      factor_names: Sequence[str]) -> list[dict[str, Any]]:
    """One warning per (metric, factor) whose best latent is inactive, for the metrics of
    :data:`BEST_LATENT_KEYS` present in ``scores``; none without rates."""
    if activity is None:
        return []
    inactive = set(activity.inactive)
    excess = activity.excess
    out = []
    for metric, (key, how) in BEST_LATENT_KEYS.items():
        latents = (scores.get(metric) or {}).get(key)
        if not latents:
            continue
        for k, j in enumerate(latents):
            if j is None or j < 0 or j not in inactive:
                continue
            name = factor_names[k] if k < len(factor_names) else str(k)
            out.append({
                "metric": metric, "factor": name, "latent": int(j), "chosen_by": how,
                "rate_above_floor_nats": float(excess[j]), "threshold_nats": activity.threshold,
                "message": (f"{metric}: factor {name}'s best latent z{j} ({how}) is inactive "
                            f"(rate {excess[j]:.4f} nats above its floor < {activity.threshold:g}): "
                            "the score leans on a latent that carries almost no information"),
            })
    return out
