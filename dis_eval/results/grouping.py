"""Which runs form one configuration: group keys (config minus seed and execution keys) and grouping.

Runs that differ only in their seed form one *configuration*; tables report the mean and sd of
each score over a configuration's seeds, as the paper's Table 2 reports "mean of ten runs"
(Brekelmans et al. 2019, Sec. 5.3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dis_eval.config.train import DERIVED_KEYS as TRAIN_DERIVED_KEYS

if TYPE_CHECKING:
    from dis_eval.results.runs import Run

# Config keys that identify a replicate rather than a configuration, or only say where or
# how a run was executed: they are left out of the grouping key. Matched on the last
# component of a flattened key (``train.seed`` counts as a seed).
SEED_KEYS: frozenset[str] = frozenset({"seed"})
NON_CONFIG_KEYS: frozenset[str] = frozenset(
    {"run_dir", "out", "out_dir", "output_dir", "name", "run_name", "resume", "progress",
     # dis_eval.config.train.TrainConfig's execution knobs and bookkeeping (not the experiment)
     "device", "device_used", "version", "checkpoint_every", "log_every", "channels_last",
     "compile", "cuda_graph", "tf32", "num_workers"}
)
# Evaluation fields of metrics.json that make a score a different quantity: part of the key.
EVAL_KEYS: tuple[str, ...] = ("representation", "protocol")

# Row-label columns first in this order (the rest alphabetically after them).
COLUMN_ORDER: tuple[str, ...] = ("model", "family", "beta", "lambda_tc", "gamma", "tc_weight", "data", "subset",
                                 "latents", "steps")

# Keys computed from others: dropped from the row labels when the remaining keys already tell
# the configurations apart. The trainer's computed keys, plus d_max: a setting, but written
# resolved (None -> the batch size), so it follows batch_size unless set.
DERIVED_KEYS: tuple[str, ...] = (*TRAIN_DERIVED_KEYS, "d_max")


def is_number(value: Any) -> bool:
    """An int or float, not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts to dot-separated keys."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


def run_seed(config: dict[str, Any]) -> Any:
    """The config's seed: the first flattened key whose last component is a seed key, or None."""
    for key, value in flatten(config).items():
        if key.split(".")[-1] in SEED_KEYS:
            return value
    return None


def group_key(config: dict[str, Any], metrics: dict[str, Any] | None) -> dict[str, Any]:
    """Everything that defines the configuration: config minus seed and run-only keys, plus
    the evaluation representation and protocol from metrics.json (as ``eval.<name>``)."""
    key = {
        k: _hashable(v)
        for k, v in flatten(config).items()
        if k.split(".")[-1] not in SEED_KEYS | NON_CONFIG_KEYS
    }
    if metrics is not None:
        for name in EVAL_KEYS:
            if name in metrics:
                key[f"eval.{name}"] = _hashable(metrics[name])
    return key


@dataclass
class Grouped:
    """Runs grouped by configuration: ``key_columns`` are the config keys that vary."""

    groups: list[tuple[dict[str, Any], list[Run]]]
    key_columns: list[str]
    missing: list[Run]


def group_runs(runs: Sequence[Run]) -> Grouped:
    """Group scored runs by configuration (all config keys but the seed)."""
    scored = [r for r in runs if r.has_scores]
    missing = [r for r in runs if not r.has_scores]
    buckets: dict[tuple, tuple[dict[str, Any], list[Run]]] = {}
    for run in scored:
        key = run.group_key()
        frozen = tuple(sorted(key.items(), key=lambda kv: kv[0]))
        buckets.setdefault(frozen, (key, []))[1].append(run)
    groups = list(buckets.values())
    all_keys = sorted({k for key, _ in groups for k in key})
    # Only keys that differ between configurations label the rows; constant ones are noise.
    varying = [k for k in all_keys if len({repr(key.get(k)) for key, _ in groups}) > 1]
    varying = _drop_derived(varying, [key for key, _ in groups])
    varying.sort(key=lambda k: (COLUMN_ORDER.index(k) if k in COLUMN_ORDER else len(COLUMN_ORDER), k))
    groups.sort(key=lambda g: tuple(_sort_value(g[0].get(k)) for k in varying))
    return Grouped(groups=groups, key_columns=varying, missing=missing)


def _drop_derived(columns: list[str], keys: list[dict[str, Any]]) -> list[str]:
    cols = list(columns)
    n_groups = len({tuple(repr(k.get(c)) for c in cols) for k in keys})
    for c in DERIVED_KEYS:
        if c in cols:
            rest = [x for x in cols if x != c]
            if rest and len({tuple(repr(k.get(x)) for x in rest) for k in keys}) == n_groups:
                cols = rest
    return cols


def _sort_value(v: Any) -> tuple:
    if v is None:
        return (0, 0, "")
    if is_number(v):
        return (1, float(v), "")
    return (2, 0, str(v))
