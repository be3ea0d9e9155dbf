"""How a model or a set of codes is scored: ``EvalConfig``, validated once at the edge (the
command line, a sweep file's ``evaluation:`` block) and handed to every scoring function.

The protocols for a run trained on a dependent subset live here, once (``subset``: score on the
rows the model saw; ``full``: on the full independent grid); the representations a metric can
be fed (``mean``: encoder means, disentanglement_lib's convention; ``sample``: the noisy
Echo/VAE sample, the Echo authors') are owned by ``dis_eval.encode.representations``.
See docs/evaluation-protocols.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from dis_eval.encode.representations import REPRESENTATIONS
from dis_eval.errors import UserError
from dis_eval.overrides import parse_overrides

PROTOCOLS: tuple[str, ...] = ("subset", "full")
FIELDS: tuple[str, ...] = ("metrics", "representation", "protocol", "seed", "repeats", "settings", "preset",
                           "device", "batch_size", "compile", "baselines")
# The conventions an evaluation scores side by side when none is chosen, in this order (names of
# dis_eval.metrics.PRESETS; the first is the primary, mirrored at metrics.json's top level):
# disentanglement_lib's (mean codes, the run's rows) and the Echo authors' (sample, full grid).
CONVENTIONS: tuple[str, ...] = ("dlib", "paper")
CUSTOM = "custom"  # the name of a single evaluation whose representation was chosen without a preset


@dataclass(frozen=True)
class EvalConfig:
    """Which metrics, on which codes and rows, with which seed and settings.

    ``None`` means "not chosen": the preset's choice applies, else the default (every metric,
    ``mean`` codes, and for a run the rows it was trained on). :meth:`resolved` fills them in.
    """

    metrics: tuple[str, ...] | None = None
    representation: str | None = None
    protocol: str | None = None
    seed: int = 0
    repeats: int = 1  # metric seeds seed .. seed + repeats - 1 (mean and sd over them)
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # per metric
    preset: str | None = None  # "dlib" or "paper" (dis_eval.metrics.PRESETS)
    device: str = "auto"  # where the encoder runs: auto | cpu | cuda | cuda:N
    batch_size: int = 1024  # encoder batch
    compile: bool = False  # torch.compile the encoder
    baselines: bool = True  # score the random and oracle baselines beside each score (cached)

    def __post_init__(self) -> None:
        from dis_eval.metrics import PRESETS
        from dis_eval.metrics.suite import resolve_metrics, resolve_settings

        if self.metrics is not None:
            object.__setattr__(self, "metrics", tuple(resolve_metrics(list(self.metrics))))
        if self.representation is not None and self.representation not in REPRESENTATIONS:
            raise UserError(f"representation {self.representation!r} is not one of {', '.join(REPRESENTATIONS)}")
        if self.protocol is not None and self.protocol not in PROTOCOLS:
            raise UserError(f"protocol {self.protocol!r} is not one of {', '.join(PROTOCOLS)}")
        if self.preset is not None and self.preset not in PRESETS:
            raise UserError(f"unknown preset {self.preset!r}; choose from {', '.join(PRESETS)}")
        if not isinstance(self.baselines, bool):
            raise UserError(f"baselines must be true or false, got {self.baselines!r}")
        for name, low in (("seed", 0), ("repeats", 1), ("batch_size", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise UserError(f"{name} must be an integer >= {low}, got {value!r}")
        if not isinstance(self.settings, Mapping) or not all(isinstance(v, Mapping) for v in self.settings.values()):
            raise UserError("settings must map metric name -> {setting: value}, e.g. {mig: {num_train: 1000}}")
        for metric, values in self.settings.items():  # known metrics and keys (applied if scored)
            resolve_metrics([metric])
            resolve_settings(metric, dict(values))
        object.__setattr__(self, "settings", {m: dict(v) for m, v in self.settings.items()})

    # ---- construction ---------------------------------------------------------------------
    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None, where: str = "evaluation") -> EvalConfig:
        """From a mapping (a sweep file's ``evaluation:`` block, a saved job); unknown keys and
        bad values are one-line errors naming ``where``."""
        raw = dict(raw or {})
        unknown = sorted(set(raw) - set(FIELDS))
        if unknown:
            raise UserError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; allowed: {', '.join(FIELDS)}")
        metrics = raw.get("metrics")
        if isinstance(metrics, str):
            metrics = [m.strip() for m in metrics.split(",") if m.strip()]
        if metrics is not None and (not isinstance(metrics, list | tuple) or not all(isinstance(m, str) for m in metrics)):
            raise UserError(f"{where}: metrics must be a list of metric names")
        if "device" in raw and raw["device"] is None:
            raw["device"] = "auto"
        try:
            return cls(**{**raw, "metrics": tuple(metrics) if metrics is not None else None,
                          "settings": raw.get("settings") or {}})
        except UserError as exc:
            raise UserError(f"{where}: {exc}") from None
        except TypeError as exc:
            raise UserError(f"{where}: {exc}") from None

    @staticmethod
    def settings_from_overrides(items: Iterable[str]) -> dict[str, dict[str, Any]]:
        """``["mig.num_bins=30"]`` (``--set``) -> ``{"mig": {"num_bins": 30}}``."""
        out: dict[str, dict[str, Any]] = {}
        for key, value in parse_overrides(items, "--set", "factor_vae.num_train=1000").items():
            metric, dot, name = key.partition(".")
            if not dot or not metric or not name:
                raise UserError(f"--set {key}={value}: expected metric.key=value, e.g. factor_vae.num_train=1000")
            out.setdefault(metric, {})[name] = value
        return out

    # ---- resolution -----------------------------------------------------------------------
    def resolved(self) -> EvalConfig:
        """Every choice made: the preset's where this config left one open, then the defaults
        (every metric, ``mean`` codes). The protocol may stay None (the run's own rows)."""
        from dis_eval.metrics import PRESETS, REGISTRY

        preset = PRESETS[self.preset] if self.preset is not None else None
        metrics = self.metrics or (tuple(preset["metrics"]) if preset else tuple(REGISTRY))
        settings: dict[str, dict[str, Any]] = {}
        for metric, values in ((preset or {}).get("settings") or {}).items():
            if metric in metrics:
                settings[metric] = dict(values)
        for metric, values in self.settings.items():
            if metric in metrics:
                settings.setdefault(metric, {}).update(values)
        return replace(self, metrics=metrics,
                       representation=self.representation or (preset["representation"] if preset else None) or "mean",
                       protocol=self.protocol or (preset["protocol"] if preset else None),
                       settings=settings)

    def plan(self) -> list[tuple[str, EvalConfig]]:
        """The evaluations to run, each (name, resolved config).

        A preset or a representation chosen: that one evaluation (named by its preset, else
        ``custom``). Neither: both :data:`CONVENTIONS` side by side - ``dlib`` (the metrics named,
        else every metric; mean codes; this config's protocol) and ``paper`` (the metrics named,
        else the authors' two; the noisy sample; always the full grid, as the authors scored).
        Settings given here (``--set``) apply to both; the caller skips ``paper`` where there is
        no sample (codes without an Echo/VAE's aux).
        """
        from dis_eval.metrics import PRESETS

        if self.preset is not None or self.representation is not None:
            return [(self.preset or CUSTOM, self.resolved())]
        out = []
        for name in CONVENTIONS:
            cfg = replace(self, preset=name)
            if name == "paper":
                cfg = replace(cfg, protocol=PRESETS[name]["protocol"])
            out.append((name, cfg.resolved()))
        return out

    def protocol_for(self, trained_subset: str | None) -> str:
        """The protocol this evaluation uses for a run trained on ``trained_subset``."""
        return self.protocol or ("subset" if trained_subset else "full")

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["metrics"] = list(self.metrics) if self.metrics is not None else None
        out["settings"] = {m: dict(v) for m, v in self.settings.items()}
        return out
