"""Which model to build: the model families (the one list of them) and ``ModelSpec``, the
typed, validated description every builder, loader and objective reads.

Light on purpose (no torch at import): the command line lists the model names from here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple

from dis_eval.errors import UserError
from dis_eval.models.clip import F_BOUND, FLOAT32_PRECISION, clip_factor


class ModelKind(NamedTuple):
    family: str  # the encoder: "echo" (Echo channel) or "vae" (Gaussian)
    uses_tc: bool  # a FactorVAE-style TC discriminator is trained alongside


MODELS: dict[str, ModelKind] = {
    "echo": ModelKind("echo", False),
    "beta_vae": ModelKind("vae", False),
    "factor_vae": ModelKind("vae", True),
    "echo_tc": ModelKind("echo", True),
    "vae_tc": ModelKind("vae", True),
}
FAMILIES: tuple[str, ...] = ("echo", "vae")


@dataclass(frozen=True)
class ModelSpec:
    """Everything that fixes a model's architecture and objective (not how it is trained).

    ``tc_weight`` is FactorVAE's gamma or the TC models' lambda (0 without a discriminator);
    ``d_max`` (Echo only) is the number of Echo terms the clip factor is computed for.
    """

    model: str
    latents: int = 10
    beta: float = 1.0
    tc_weight: float = 0.0
    d_max: int | None = None
    echo_precision: float = FLOAT32_PRECISION

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise UserError(f"unknown model {self.model!r}; choose one of {', '.join(MODELS)}")
        if self.latents < 1:
            raise UserError(f"latents must be >= 1, got {self.latents}")
        for name in ("beta", "tc_weight"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise UserError(f"{name} must be a finite number >= 0, got {value}")
        if self.tc_weight > 0 and not self.uses_discriminator:
            raise UserError(f"{self.model} has no TC discriminator; a TC weight needs factor_vae, echo_tc or vae_tc")
        if self.family == "echo":
            if self.d_max is None or self.d_max < 1:
                raise UserError(f"an Echo model needs d_max >= 1 (the authors: the batch size), got {self.d_max}")
            if not 0 < self.echo_precision < 1:
                raise UserError(f"echo_precision must be in (0, 1), got {self.echo_precision}")
        elif self.d_max is not None:
            raise UserError(f"d_max applies to Echo models only, not {self.model}; remove it")

    @property
    def family(self) -> str:
        return MODELS[self.model].family

    @property
    def uses_discriminator(self) -> bool:
        return MODELS[self.model].uses_tc

    @cached_property
    def echo_clip(self) -> float | None:
        """Echo's clip factor r for ``d_max`` terms (computed once per spec); None for VAEs."""
        if self.family != "echo":
            return None
        return clip_factor(int(self.d_max or 0), F_BOUND, self.echo_precision)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ModelSpec:
        """The spec inside a resolved training config (a run's config.yaml, or the copy saved
        in model.pt / checkpoint.pt), whose keys are all present."""
        try:
            family = MODELS[config["model"]].family
            return cls(model=str(config["model"]), latents=int(config["latents"]), beta=float(config["beta"]),
                       tc_weight=float(config["tc_weight"]),
                       d_max=int(config["d_max"]) if family == "echo" else None,
                       echo_precision=float(config["echo_precision"]))
        except KeyError as exc:
            raise UserError(f"the saved training config lacks {exc.args[0]!r}: the model file is "
                            "incomplete or was not written by dis-eval train") from None
