"""Gaussian VAE (Kingma & Welling 2014) with disentanglement_lib's architecture.

Used by beta-VAE (Higgins et al. 2017: beta * KL), FactorVAE (Kim & Mnih 2018: KL + gamma * TC)
and VAE + TC. The rate term is KL(q(z|x) || N(0, I)) per dimension, as disentanglement_lib's
``compute_gaussian_kl``: 0.5 (mu^2 + exp(logvar) - logvar - 1), summed over latents and averaged
over the batch.
"""

from __future__ import annotations

import torch
from torch import nn

from dis_eval.models.architecture import ConvEncoder, DeconvDecoder, glorot_init_
from dis_eval.rng import DRAW_LATENT, Draws


def gaussian_kl_per_dim(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, 1)) elementwise (N, D), closed form."""
    return 0.5 * (mean.square() + logvar.exp() - logvar - 1.0)


def gaussian_rate_per_dim(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Batch mean of KL per latent (D,); its sum is the KL term of the ELBO."""
    return gaussian_kl_per_dim(mean, logvar).mean(dim=0)


def gaussian_sample(mean: torch.Tensor, logvar: torch.Tensor,
                    generator: torch.Generator | Draws | None = None) -> torch.Tensor:
    """Reparameterised sample mean + exp(logvar / 2) * eps, eps ~ N(0, I) from a torch generator
    or from counter-based draws (training; a pack's mean is (M, B, D))."""
    if isinstance(generator, Draws):
        eps = generator.normal(DRAW_LATENT, mean.shape, mean.dtype)
    else:
        eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return mean + torch.exp(0.5 * logvar) * eps


class GaussianVAE(nn.Module):
    """``encode(x) -> (mean, logvar)``; ``decode(z) -> logits``."""

    family = "vae"

    def __init__(self, num_latents: int = 10) -> None:
        super().__init__()
        self.num_latents = num_latents
        self.encoder = ConvEncoder(num_latents)
        self.decoder = DeconvDecoder(num_latents)
        glorot_init_(self)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def sample_latent(self, mean: torch.Tensor, aux: torch.Tensor,
                      generator: torch.Generator | Draws | None = None) -> torch.Tensor:
        return gaussian_sample(mean, aux, generator)

    def rate_per_dim(self, mean: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
        return gaussian_rate_per_dim(mean, aux)
