"""Build a model, its discriminator and its objective from a :class:`ModelSpec`."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dis_eval.models.discriminator import Discriminator
from dis_eval.models.echo import EchoAutoencoder, echo_rate_per_dim
from dis_eval.models.gaussian import GaussianVAE, gaussian_rate_per_dim
from dis_eval.models.losses import Objective
from dis_eval.models.spec import ModelSpec


def build_model(spec: ModelSpec) -> tuple[nn.Module, nn.Module | None]:
    """(model, discriminator or None), freshly initialised from the global torch generator."""
    if spec.family == "echo":
        model: nn.Module = EchoAutoencoder(spec.latents, d_max=int(spec.d_max or 0), clip=spec.echo_clip)
    else:
        model = GaussianVAE(spec.latents)
    return model, (Discriminator(spec.latents) if spec.uses_discriminator else None)


def build_objective(spec: ModelSpec, model: nn.Module, discriminator: nn.Module | None) -> Objective:
    """The family's loss: reconstruction + beta * rate (+ TC weight * TC)."""
    return Objective(model, beta=spec.beta, tc_weight=spec.tc_weight, discriminator=discriminator)


def rate_per_latent(mean: np.ndarray, aux: np.ndarray, family: str) -> np.ndarray:
    """Average rate per latent (nats) over encoded rows, from cached codes: the same quantity the
    models' ``rate_per_dim`` gives during training (Echo: -E log s_j; VAE: KL to N(0, 1))."""
    aux_t = torch.as_tensor(np.asarray(aux, dtype=np.float64))
    if family == "echo":
        return echo_rate_per_dim(aux_t).numpy()
    return gaussian_rate_per_dim(torch.as_tensor(np.asarray(mean, dtype=np.float64)), aux_t).numpy()
