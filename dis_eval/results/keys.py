"""A run's identity in a table: its flattened config, its seed, and its configuration key (the
config minus the seed and execution keys, plus the evaluation's representation and protocol)."""

from __future__ import annotations

from typing import Any

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

# A score under a named convention of metrics.json's ``protocols``: ``paper:mig``,
# ``dlib:factor_vae.train_accuracy`` (bare names are the top-level record's, as before).
CONVENTION_SEP = ":"


def labelled(convention: str, score: str) -> str:
    """``paper`` + ``mig`` -> ``paper:mig``."""
    return f"{convention}{CONVENTION_SEP}{score}"


def split_label(score: str) -> tuple[str | None, str]:
    """``paper:mig.x`` -> (``paper``, ``mig.x``); a bare name -> (None, name)."""
    conv, sep, rest = score.partition(CONVENTION_SEP)
    return (conv, rest) if sep else (None, score)


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
