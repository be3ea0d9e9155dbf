"""Which runs form one configuration: grouping by their keys (``keys.group_key``), and the
columns that label a configuration.

Runs that differ only in their seed form one *configuration*; tables report the mean and sd of
each score over a configuration's seeds, as the paper's Table 2 reports "mean of ten runs"
(Brekelmans et al. 2019, Sec. 5.3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dis_eval.config.train import DERIVED_KEYS as TRAIN_DERIVED_KEYS
from dis_eval.results.keys import is_number
from dis_eval.results.runs import Run

# Row-label columns first in this order (the rest alphabetically after them).
COLUMN_ORDER: tuple[str, ...] = ("model", "family", "beta", "lambda_tc", "gamma", "tc_weight", "data", "subset",
                                 "latents", "steps")

# Keys computed from others: dropped from the row labels when the remaining keys already tell
# the configurations apart. The trainer's computed keys, plus d_max: a setting, but written
# resolved (None -> the batch size), so it follows batch_size unless set.
DERIVED_KEYS: tuple[str, ...] = (*TRAIN_DERIVED_KEYS, "d_max")


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
    varying = drop_derived_keys(varying, [key for key, _ in groups])
    varying.sort(key=lambda k: (COLUMN_ORDER.index(k) if k in COLUMN_ORDER else len(COLUMN_ORDER), k))
    groups.sort(key=lambda g: tuple(_sort_value(g[0].get(k)) for k in varying))
    return Grouped(groups=groups, key_columns=varying, missing=missing)


def drop_derived_keys(columns: list[str], keys: list[dict[str, Any]]) -> list[str]:
    """``columns`` without the keys computed from others (DERIVED_KEYS: family from model, ...)
    when the remaining columns still tell the configurations ``keys`` apart."""
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
