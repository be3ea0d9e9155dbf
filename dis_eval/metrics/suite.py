"""Run several metrics on one data object and one set of cached codes, with optional
multi-seed spread (each repeat reseeds both the metric's random state and the noise of a
sampled representation)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from dis_eval.errors import UserError
from dis_eval.metrics import REGISTRY
from dis_eval.metrics.utils import Representation, to_builtin


def resolve_metrics(metrics: Sequence[str] | str | None) -> list[str]:
    """Metric names, validated; None/"all" means the whole registry."""
    if metrics is None or metrics == "all" or metrics == ["all"]:
        return list(REGISTRY)
    if isinstance(metrics, str):
        metrics = [m.strip() for m in metrics.split(",") if m.strip()]
    unknown = [m for m in metrics if m not in REGISTRY]
    if unknown:
        raise UserError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(REGISTRY)}")
    if not metrics:
        raise UserError("no metric named; choose from " + ", ".join(REGISTRY))
    return list(dict.fromkeys(metrics))


def resolve_settings(name: str, overrides: dict[str, Any] | None) -> dict[str, Any]:
    """Defaults of ``name`` updated with ``overrides`` (unknown keys are an error)."""
    defaults = REGISTRY[name][1]
    overrides = dict(overrides or {})
    unknown = [k for k in overrides if k not in defaults]
    if unknown:
        raise UserError(
            f"unknown setting(s) {', '.join(unknown)} for metric {name}; known: {', '.join(defaults)}")
    return {**defaults, **overrides}


def _is_scalar(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def run_suite(data: Any, make_representation: Callable[[int], Representation],
              metrics: Sequence[str] | str | None = None, seed: int = 0,
              settings_overrides: dict[str, dict[str, Any]] | None = None,
              repeats: int = 1) -> dict[str, Any]:
    """Score ``metrics`` on ``data``.

    Each (metric, repeat) gets a fresh representation, so a sampled representation's noise
    does not depend on which metrics ran before.

    ``make_representation(seed)`` gives the representation callable for one repeat (the seed
    only matters for sampled representations). Repeat r uses ``RandomState(seed + r)``, as
    dlib seeds each metric with a fresh ``RandomState(random_seed)``. With ``repeats > 1``,
    scalar keys of ``scores`` hold the mean over repeats and ``spread`` their standard
    deviation (ddof=1) and the single values.
    """
    names = resolve_metrics(metrics)
    if int(repeats) < 1:
        raise UserError(f"--repeats must be at least 1, got {repeats}")
    overrides = settings_overrides or {}
    unknown = [m for m in overrides if m not in REGISTRY]
    if unknown:
        raise UserError(f"settings given for unknown metric(s) {', '.join(unknown)}")
    out: dict[str, Any] = {"scores": {}, "headline": {}, "settings": {}, "timings": {}}
    if repeats > 1:
        out["spread"] = {}
    for name in names:
        fn, _, headline = REGISTRY[name]
        settings = resolve_settings(name, overrides.get(name))
        results = []
        t0 = time.perf_counter()
        for r in range(repeats):
            results.append(fn(data, make_representation(seed + r), np.random.RandomState(seed + r),
                              **settings))
        out["timings"][name] = (time.perf_counter() - t0) / repeats
        scores = dict(results[0])
        if repeats > 1:
            spread = {}
            for key, value in results[0].items():
                if _is_scalar(value):
                    vals = np.array([res[key] for res in results], dtype=np.float64)
                    scores[key] = float(vals.mean())
                    spread[key] = {"mean": float(vals.mean()), "std": float(vals.std(ddof=1)),
                                   "n": int(repeats), "values": vals.tolist()}
            out["spread"][name] = spread
        out["scores"][name] = to_builtin(scores)
        out["headline"][name] = float(scores[headline])
        out["settings"][name] = to_builtin(settings)
    return out
