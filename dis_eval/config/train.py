"""The training config: one typed, validated dataclass, read from YAML plus ``key=value`` overrides.

Every bad value fails here, before any training, with a one-line ``UserError``.

Step counting: ``steps`` counts **batches**. Each batch makes one model update and, for models with
a TC discriminator, one discriminator update. disentanglement_lib's FactorVAE advanced its global
step twice per batch (both optimisers' ``minimize`` share it), so its "300,000 steps" are 150,000
batches: compare with dlib's FactorVAE runs at ``steps: 150000``, or note the difference.

Optimisers: PyTorch Adam with TF's defaults (lr 1e-4, betas (0.9, 0.999), eps 1e-8). TF1's Adam adds
eps to sqrt(v_hat * (1 - beta2^t)) rather than to sqrt(v_hat): the two differ only while sqrt(v)
is near eps.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from dis_eval.errors import UserError
from dis_eval.models.clip import FLOAT32_PRECISION
from dis_eval.models.spec import MODELS, ModelSpec
from dis_eval.overrides import parse_overrides

# Keys written to a run's config.yaml that are computed, never set by users.
DERIVED_KEYS = (
    "effective_echo_terms", "echo_clip", "tc_weight", "step_unit", "family", "device_used", "version",
)
# Friendlier spellings accepted on input.
ALIASES = {"lambda": "lambda_tc", "batch": "batch_size", "num_latents": "latents"}


@dataclass
class TrainConfig:
    """All training settings. Defaults are disentanglement_lib's unsupervised study / the authors'."""

    model: str = "echo"  # echo | beta_vae | factor_vae | echo_tc | vae_tc
    beta: float = 1.0  # weight of the rate (Echo: I(x;z); VAE: KL). factor_vae: must be 1 (dlib)
    gamma: float | None = None  # factor_vae's TC weight (dlib grid 10..100); factor_vae only
    lambda_tc: float | None = None  # TC weight of echo_tc / vae_tc (key `lambda` accepted)
    d_max: int | None = None  # Echo terms for the clip factor; None = batch_size (authors: 64 = B)
    echo_precision: float = FLOAT32_PRECISION  # remainder bound the clip factor guarantees
    latents: int = 10
    data: str = "dsprites"  # DataSpec source: "dsprites" (prepared file) or a path
    subset: str | None = None  # None, a preset ("authors", "paper-text"), a recipe, or a .h5 path
    steps: int = 300_000  # batches (see module docstring)
    batch_size: int = 64
    lr: float = 1e-4
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    disc_lr: float = 1e-4
    disc_betas: tuple[float, float] = (0.5, 0.9)  # dlib; the authors' Echo-TC used (0.5, 0.999)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    checkpoint_every: int = 5000  # steps between checkpoints (and reconstruction images)
    log_every: int = 100  # steps between host reads of the losses (the only device syncs)
    channels_last: bool = True  # NHWC convolutions (CPU: ~30% faster here)
    compile: bool = False  # torch.compile the networks
    cuda_graph: bool | None = None  # capture a whole step in one CUDA graph; None: on for CUDA
    tf32: bool = True  # TF32 matmuls/convolutions on CUDA
    _spec: ModelSpec | None = field(default=None, repr=False, compare=False)

    # ---- construction ------------------------------------------------------------------
    @classmethod
    def from_dict(cls, raw: dict[str, Any], *, allow_derived: bool = False) -> TrainConfig:
        """Typed config from a plain dict; unknown keys and bad values raise UserError."""
        hints = get_type_hints(cls)
        known = {f.name for f in fields(cls) if not f.name.startswith("_")}
        kwargs: dict[str, Any] = {}
        for key, value in raw.items():
            key = ALIASES.get(key, key)
            if key in DERIVED_KEYS:
                if allow_derived:
                    continue
                raise UserError(f"config key {key!r} is computed by the trainer; remove it")
            if key not in known:
                near = difflib.get_close_matches(key, sorted(known), n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                raise UserError(f"unknown config key {key!r}{hint}; known keys: {', '.join(sorted(known))}")
            kwargs[key] = _coerce(key, value, hints[key])
        cfg = cls(**kwargs)
        cfg.validate()
        return cfg

    @classmethod
    def load(cls, path: str | os.PathLike, overrides: list[str] | None = None,
             *, allow_derived: bool = False) -> TrainConfig:
        """Read a YAML file, apply ``key=value`` overrides (values parsed as YAML), validate."""
        raw = read_config_file(path)
        raw.update(parse_overrides(overrides or []))
        return cls.from_dict(raw, allow_derived=allow_derived)

    # ---- validation ------------------------------------------------------------------------
    def validate(self) -> None:
        def bad(msg: str) -> UserError:
            return UserError(msg)

        if self.model not in MODELS:
            raise bad(f"unknown model {self.model!r}; choose one of {', '.join(MODELS)}")
        family, uses_tc = MODELS[self.model]
        _nonneg("beta", self.beta)
        if self.model == "factor_vae" and self.beta != 1.0:
            raise bad("factor_vae weights the KL by 1 (disentanglement_lib); use model=vae_tc for beta != 1")
        if self.model == "factor_vae":
            if self.gamma is None:
                raise bad("factor_vae needs gamma (the TC weight; dlib's grid is 10, 20, 30, 40, 50, 100)")
            _nonneg("gamma", self.gamma)
        elif self.gamma is not None:
            raise bad(f"gamma is factor_vae's TC weight; for {self.model} use lambda (echo_tc/vae_tc) or remove it")
        if self.model in ("echo_tc", "vae_tc"):
            if self.lambda_tc is None:
                raise bad(f"{self.model} needs lambda (the TC weight), e.g. lambda=5")
            _nonneg("lambda", self.lambda_tc)
        elif self.lambda_tc is not None:
            hint = "factor_vae uses gamma" if self.model == "factor_vae" else f"use model={'echo_tc' if family == 'echo' else 'vae_tc'}"
            raise bad(f"lambda (TC weight) does not apply to {self.model}; {hint}")
        if self.batch_size < 2:
            raise bad(f"batch_size must be >= 2 (Echo noise and the TC permutation use other batch members), got {self.batch_size}")
        if family == "echo":
            if self.d_max is not None and not 1 <= self.d_max <= self.batch_size:
                raise bad(f"d_max must be in 1..batch_size ({self.batch_size}); got {self.d_max} "
                          f"(at most batch_size - 1 = {self.batch_size - 1} terms are summed)")
            if not 0 < self.echo_precision < 1:
                raise bad(f"echo_precision must be in (0, 1), got {self.echo_precision}")
        elif self.d_max is not None:
            raise bad(f"d_max applies to Echo models only, not {self.model}; remove it")
        for name in ("latents", "steps", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise bad(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.seed < 0:
            raise bad(f"seed must be >= 0, got {self.seed}")
        for name in ("lr", "adam_eps", "disc_lr"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise bad(f"{name} must be a positive number, got {v}")
        for name in ("adam_betas", "disc_betas"):
            b = getattr(self, name)
            if not all(0 <= x < 1 for x in b):
                raise bad(f"{name} must be two numbers in [0, 1), got {list(b)}")
        dev = self.device
        if not (dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit())):
            raise bad(f"device must be auto, cpu, cuda or cuda:N, got {dev!r}")
        if self.cuda_graph and dev == "cpu":
            raise bad("cuda_graph needs a CUDA device; set device=cuda or cuda_graph=false")
        if not self.data:
            raise bad("data must be 'dsprites' or a path to an official-format .npz/.hdf5 file")
        if self.data != "dsprites" and not Path(self.data).expanduser().is_file():
            raise bad(f"data file {self.data} not found (use data=dsprites for the prepared set, or a path)")
        if self.subset is not None and self.subset.endswith((".h5", ".hdf5")) and not Path(self.subset).expanduser().is_file():
            raise bad(f"subset file {self.subset} not found")

    # ---- derived values ----------------------------------------------------------------------
    @property
    def family(self) -> str:
        return self.model_spec.family

    @property
    def uses_discriminator(self) -> bool:
        return self.model_spec.uses_discriminator

    @property
    def tc_weight(self) -> float:
        """gamma for FactorVAE, lambda for Echo/VAE + TC, else 0."""
        if self.model == "factor_vae":
            return float(self.gamma or 0.0)
        return float(self.lambda_tc or 0.0) if MODELS[self.model].uses_tc else 0.0

    def resolved_d_max(self) -> int:
        return self.batch_size if self.d_max is None else self.d_max

    @property
    def model_spec(self) -> ModelSpec:
        """The model this config trains (built once, its clip factor computed once)."""
        if self._spec is None:
            self._spec = ModelSpec(self.model, self.latents, self.beta, self.tc_weight,
                                   self.resolved_d_max() if MODELS[self.model].family == "echo" else None,
                                   self.echo_precision)
        return self._spec

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every key (defaults filled) plus the derived keys, for config.yaml."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name.startswith("_"):
                continue
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        out["family"] = self.family
        out["step_unit"] = "batch"  # one model (+ one discriminator) update per batch
        out["tc_weight"] = self.tc_weight
        if self.family == "echo":
            from dis_eval.models.clip import echo_terms

            out["d_max"] = self.resolved_d_max()
            # r is computed for d_max terms; sampling without replacement sums min(d_max, B-1).
            out["echo_clip"] = self.model_spec.echo_clip
            out["effective_echo_terms"] = echo_terms(out["d_max"], self.batch_size)
        return out

    def replace(self, **changes: Any) -> TrainConfig:
        cfg = dataclasses.replace(self, _spec=None, **changes)
        cfg.validate()
        return cfg


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """A YAML mapping of config keys, or a one-line UserError."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {path} not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read config file {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise UserError(f"config file {path} must hold a mapping of key: value")
    return raw


def _nonneg(name: str, v: float) -> None:
    if not (math.isfinite(v) and v >= 0):
        raise UserError(f"{name} must be a finite number >= 0, got {v}")


def _coerce(key: str, value: Any, typ: Any) -> Any:
    """Coerce a YAML value to the field's type, or raise a one-line UserError."""
    origin, args = get_origin(typ), get_args(typ)
    if args and type(None) in args and origin is not tuple:  # Optional[X]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "", "auto")):
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(key, value, inner[0])
    if origin is tuple:
        if isinstance(value, str):
            value = [p for p in value.strip("[]()").replace(",", " ").split()]
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise UserError(f"{key} must be a list of {len(args)} numbers, got {value!r}")
        return tuple(_coerce(key, v, a) for v, a in zip(value, args, strict=True))
    try:
        if typ is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
                return value.lower() in ("true", "yes", "on", "1")
            if value in (0, 1):
                return bool(value)
            raise ValueError
        if typ is int:
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, float):
                if not value.is_integer():
                    raise ValueError
                return int(value)
            return int(str(value).replace("_", ""))
        if typ is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if typ is str:
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise ValueError
            return str(value)
    except (TypeError, ValueError):
        name = getattr(typ, "__name__", str(typ))
        raise UserError(f"{key} must be {name}, got {value!r}") from None
    raise UserError(f"{key}: unsupported type {typ}")
