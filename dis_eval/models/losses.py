"""One objective for every model family: reconstruction + beta * rate (+ w * TC).

- Reconstruction: Bernoulli cross-entropy with logits summed over the 4,096 pixels, batch mean
  (disentanglement_lib's ``bernoulli_loss`` with ``activation="logits"``).
- Rate: Echo's exact I(x; z) = -E sum_j log s_j (Brekelmans et al. 2019, Thm 2.2) or the Gaussian
  KL to N(0, I); both per dimension via ``model.rate_per_dim``.
- TC (FactorVAE, Kim & Mnih 2018; Echo/VAE + TC): mean(logit_0 - logit_1) of the discriminator on
  the sampled codes. One discriminator forward over [z; permute_dims(z)] feeds both losses, as in
  disentanglement_lib's ``FactorVAE.model_fn``: the model loss's gradients go to the encoder and
  decoder only, the discriminator loss's to the discriminator only (``backward(inputs=...)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dis_eval.models.discriminator import (
    discriminator_accuracy,
    discriminator_loss,
    permute_dims,
    tc_estimate,
)
from dis_eval.rng import Draws


@dataclass
class StepOutput:
    loss: torch.Tensor  # the model's objective (with graph)
    disc_loss: torch.Tensor | None  # the discriminator's objective (with graph), if any
    terms: torch.Tensor  # (len(term_names),) detached values, in term_names order
    rate_per_dim: torch.Tensor  # (D,) detached


def reconstruction_loss(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Bernoulli NLL summed over pixels, averaged over the batch."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / x.shape[0]


def term_names(family: str, has_discriminator: bool) -> tuple[str, ...]:
    """The logged loss terms, in order (single models and packs)."""
    names = ["loss", "reconstruction", "rate" if family == "echo" else "kl"]
    if has_discriminator:
        names += ["tc", "disc_loss", "disc_accuracy"]
    return tuple(names)


class Objective:
    """The per-family loss: the only thing that differs between models in the training loop."""

    def __init__(self, model: nn.Module, beta: float = 1.0, tc_weight: float = 0.0,
                 discriminator: nn.Module | None = None) -> None:
        if beta < 0 or tc_weight < 0:
            raise ValueError("beta and the TC weight must be >= 0")
        if tc_weight > 0 and discriminator is None:
            raise ValueError("a TC weight needs a discriminator")
        self.model = model
        self.beta = float(beta)
        self.tc_weight = float(tc_weight)
        self.discriminator = discriminator
        self.term_names: tuple[str, ...] = term_names(model.family, discriminator is not None)
        self._model_params = [p for p in model.parameters() if p.requires_grad]
        self._disc_params = [] if discriminator is None else list(discriminator.parameters())

    def __call__(self, x: torch.Tensor, generator: torch.Generator | Draws | None = None) -> StepOutput:
        mean, aux = self.model.encode(x)
        z = self.model.sample_latent(mean, aux, generator)
        logits = self.model.decode(z)
        recon = reconstruction_loss(logits, x)
        rate_dims = self.model.rate_per_dim(mean, aux)
        rate = rate_dims.sum()
        loss = recon + self.beta * rate
        values = [recon, rate]
        disc_loss = None
        if self.discriminator is not None:
            z_perm = permute_dims(z.detach(), generator)
            both = self.discriminator(torch.cat([z, z_perm], dim=0))
            real, perm = both[: z.shape[0]], both[z.shape[0]:]
            tc = tc_estimate(real)
            loss = loss + self.tc_weight * tc
            disc_loss = discriminator_loss(real, perm)
            values += [tc, disc_loss, discriminator_accuracy(real, perm)]
        terms = torch.stack([loss] + values).detach()
        return StepOutput(loss, disc_loss, terms, rate_dims.detach())

    def backward(self, out: StepOutput) -> None:
        """Gradients of each loss into its own parameters only (grads must be zero/None before)."""
        if out.disc_loss is None:
            out.loss.backward()
            return
        out.loss.backward(inputs=self._model_params, retain_graph=True)
        out.disc_loss.backward(inputs=self._disc_params)
