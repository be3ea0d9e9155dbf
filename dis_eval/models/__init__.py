"""Models: Echo autoencoder, Gaussian VAE, FactorVAE discriminator, their objective, checkpoints.

Contract (ARCHITECTURE.md): ``model.family`` in {"echo", "vae"}; ``model.encode(x) -> (mean, aux)``
(Echo: f(x), log s(x) incl. log r; VAE: mean, log-variance); ``model.decode(z) -> logits``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from dis_eval.models.checkpoint import load_model
from dis_eval.models.discriminator import Discriminator, permute_dims, tc_estimate
from dis_eval.models.echo import (
    FLOAT32_PRECISION,
    EchoAutoencoder,
    clip_factor,
    echo_noise,
    echo_sample,
    echo_terms,
)
from dis_eval.models.gaussian import GaussianVAE, gaussian_kl_per_dim, gaussian_sample
from dis_eval.models.losses import Objective, StepOutput

# model name -> (encoder family, uses a TC discriminator)
MODELS: dict[str, tuple[str, bool]] = {
    "echo": ("echo", False),
    "beta_vae": ("vae", False),
    "factor_vae": ("vae", True),
    "echo_tc": ("echo", True),
    "vae_tc": ("vae", True),
}


def build_model(config: dict[str, Any]) -> tuple[nn.Module, nn.Module | None]:
    """(model, discriminator or None) from a resolved training config dict.

    Reads ``model``, ``latents`` and, for Echo, ``d_max`` and ``echo_precision``.
    """
    name = config["model"]
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    family, uses_tc = MODELS[name]
    latents = int(config.get("latents", 10))
    if family == "echo":
        model: nn.Module = EchoAutoencoder(latents, d_max=int(config["d_max"]),
                                           precision=float(config.get("echo_precision", FLOAT32_PRECISION)))
    else:
        model = GaussianVAE(latents)
    return model, (Discriminator(latents) if uses_tc else None)


def tc_weight(config: dict[str, Any]) -> float:
    """The TC weight of a config: gamma for FactorVAE, lambda for Echo/VAE + TC, else 0."""
    name = config["model"]
    if name == "factor_vae":
        return float(config["gamma"])
    if MODELS[name][1]:
        return float(config["lambda_tc"])
    return 0.0


def build_objective(config: dict[str, Any], model: nn.Module,
                    discriminator: nn.Module | None) -> Objective:
    # dlib's FactorVAE weights the KL by 1; beta is configurable for the others.
    return Objective(model, beta=float(config.get("beta", 1.0)), tc_weight=tc_weight(config),
                     discriminator=discriminator)


__all__ = [
    "MODELS", "FLOAT32_PRECISION", "Discriminator", "EchoAutoencoder", "GaussianVAE", "Objective",
    "StepOutput", "build_model", "build_objective", "clip_factor", "echo_noise", "echo_sample",
    "echo_terms", "gaussian_kl_per_dim", "gaussian_sample", "load_model", "permute_dims",
    "tc_estimate", "tc_weight",
]
