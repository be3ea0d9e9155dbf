"""Typed inputs of the stages, validated once at the edge: ``TrainConfig`` (a run's training
settings, its ``ModelSpec``) and ``EvalConfig`` (how scores are computed)."""

from dis_eval._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "TrainConfig": ".train", "DERIVED_KEYS": ".train", "read_config_file": ".train",
    "EvalConfig": ".evaluation", "PROTOCOLS": ".evaluation",
})
