"""Baselines beside every score: the same metric, settings and metric seeds on

- ``random``: Gaussian codes N(0, 1) of the same shape as the model's (one row per data row,
  as many latents), drawn once from a fixed generator (:data:`RANDOM_CODES_SEED`);
- ``oracle``: the true factor classes of each row as its codes (one latent per factor).

so a reader sees where a score sits between chance and perfect (docs/reading-scores.md). A
baseline depends only on the rows scored and their factors, the metric, its settings, the
metric seeds and (random) the number of latents: it is computed once per such key and cached as
``<cache>/<sha256 of the key>.json`` (:func:`baseline_cache_dir`: ``$DIS_EVAL_CACHE/baselines``,
else ``<data dir>/cache/baselines``). Files are written atomically: processes sharing the folder
may compute the same key at once and both write the same content; a reader sees a whole file or
none. A cache file whose key does not match is recomputed, never trusted.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from dis_eval.errors import UserError

BASELINES: tuple[str, ...] = ("random", "oracle")
CACHE_ENV = "DIS_EVAL_CACHE"
RANDOM_CODES_SEED = 20191208  # the generator of the random codes (fixed: part of the cache key)
_FORMAT = 1  # bump when what a cache file holds changes


def baseline_cache_dir() -> Path:
    """``$DIS_EVAL_CACHE/baselines`` when set, else ``<data dir>/cache/baselines``."""
    from dis_eval.data.spec import default_data_dir

    root = os.environ.get(CACHE_ENV)
    return (Path(root) if root else default_data_dir() / "cache") / "baselines"


class ArrayRepresentation:
    """positions -> rows of a fixed (N, D) array of codes (independent of batching)."""

    batch_invariant = True

    def __init__(self, codes: np.ndarray) -> None:
        self.codes = codes

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        return self.codes[np.asarray(positions, dtype=np.int64)]


def baseline_codes(kind: str, data: Any, num_latents: int) -> np.ndarray:
    """The codes of baseline ``kind`` for every row of ``data``."""
    if kind == "random":
        rng = np.random.default_rng(RANDOM_CODES_SEED)
        return rng.standard_normal((len(data), int(num_latents)))
    if kind == "oracle":
        return np.asarray(data.classes, dtype=np.float64)
    raise ValueError(f"unknown baseline {kind!r}; one of {BASELINES}")


def baseline_key(kind: str, metric: str, settings: Mapping[str, Any], seed: int, repeats: int,
                 rows_sha256: str, num_latents: int) -> dict[str, Any]:
    """Everything a baseline's value depends on."""
    from dis_eval.metrics.utils import to_builtin

    key = {"format": _FORMAT, "baseline": kind, "metric": metric, "settings": to_builtin(dict(settings)),
           "metric_seeds": list(range(int(seed), int(seed) + int(repeats))), "rows_sha256": rows_sha256}
    if kind == "random":
        key.update(num_latents=int(num_latents), codes="standard normal", codes_seed=RANDOM_CODES_SEED)
    else:
        key["codes"] = "factor classes"
    return key


def _key_hash(key: Mapping[str, Any]) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def _read_cached(path: Path, key: Mapping[str, Any]) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(value, dict) or value.get("key") != key or "headline" not in value:
        return None
    return value


def compute_baselines(data: Any, metric: str, settings: Mapping[str, Any], seed: int, repeats: int,
                      num_latents: int, cache_dir: str | os.PathLike | None = None,
                      rows_sha256: str | None = None) -> dict[str, Any]:
    """``{kind: {"headline", "sd", "n", "cached", "file"}}`` for each baseline of ``metric``
    (settings as resolved for the model's score), from the cache or computed and cached."""
    from dis_eval.atomic import atomic_write_json
    from dis_eval.metrics import REGISTRY
    from dis_eval.metrics.suite import run_suite
    from dis_eval.provenance import sha256_arrays

    folder = Path(cache_dir) if cache_dir is not None else baseline_cache_dir()
    rows_sha256 = rows_sha256 or sha256_arrays(np.asarray(data.indices, dtype=np.int64),
                                               np.asarray(data.classes, dtype=np.int64))
    headline = REGISTRY[metric][2]
    out: dict[str, Any] = {}
    for kind in BASELINES:
        key = baseline_key(kind, metric, settings, seed, repeats, rows_sha256, num_latents)
        path = folder / f"{_key_hash(key)}.json"
        hit = _read_cached(path, key)
        cached = hit is not None
        if hit is None:
            rep = ArrayRepresentation(baseline_codes(kind, data, num_latents))
            try:
                res = run_suite(data, lambda _s, rep=rep: rep, [metric], int(seed), {metric: dict(settings)},
                                int(repeats))
            except UserError as exc:  # the metric is undefined on these codes: say why, cache that too
                hit = {"key": key, "headline": None, "headline_undefined": str(exc), "sd": None, "n": int(repeats)}
            else:
                spread = (res.get("spread") or {}).get(metric, {}).get(headline, {})
                hit = {"key": key, "headline": res["headline"][metric], "sd": spread.get("std"), "n": int(repeats)}
            atomic_write_json(path, hit)
        entry = {"headline": hit["headline"], "sd": hit["sd"], "n": hit["n"], "cached": cached, "file": str(path)}
        if hit.get("headline_undefined"):
            entry["headline_undefined"] = hit["headline_undefined"]
        out[kind] = entry
    return out
