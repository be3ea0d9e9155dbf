"""FactorVAE's total-correlation discriminator (Kim & Mnih 2018, "Disentangling by Factorizing").

Architecture from disentanglement_lib's ``fc_discriminator``: 6 dense layers of 1,000 units with
LeakyReLU(0.2) (``tf.nn.leaky_relu``'s default slope), 2 logits. Logit 0 means "sample of q(z)",
logit 1 "sample of prod_j q(z_j)". TC estimate = mean(logit_0 - logit_1) on q(z) samples (the
density-ratio trick); the discriminator minimises the cross-entropy of telling the batch's codes
from the same codes with every dimension independently permuted **across the batch**.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dis_eval.models.architecture import glorot_init_
from dis_eval.rng import DRAW_PERMUTE, Draws


class Discriminator(nn.Module):
    def __init__(self, num_latents: int = 10, hidden: int = 1000, layers: int = 6) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        width = num_latents
        for _ in range(layers):
            mods += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
            width = hidden
        mods.append(nn.Linear(width, 2))
        self.net = nn.Sequential(*mods)
        glorot_init_(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def permute_dims(z: torch.Tensor, generator: torch.Generator | Draws | None = None) -> torch.Tensor:
    """Each latent column independently permuted across the batch (rows), as dlib's shuffle_codes.

    A sample of prod_j q(z_j): row i takes dimension j from a random other row. (Permuting the
    dimensions within a row instead is a known bug in other implementations.) A pack's codes
    (M, B, D) from counter-based draws are permuted per member along the batch axis.
    """
    if isinstance(generator, Draws):
        keys = generator.sort_keys(DRAW_PERMUTE, z.shape)
    else:
        keys = torch.rand(z.shape, generator=generator, device=z.device, dtype=torch.float64)
    idx = keys.argsort(dim=-2)
    return torch.gather(z, -2, idx)


def tc_estimate(logits_real: torch.Tensor) -> torch.Tensor:
    """Density-ratio TC estimate: mean over the batch of logit_0 - logit_1."""
    return (logits_real[:, 0] - logits_real[:, 1]).mean()


def discriminator_loss(logits_real: torch.Tensor, logits_perm: torch.Tensor) -> torch.Tensor:
    """0.5 CE(real -> class 0) + 0.5 CE(permuted -> class 1), dlib's ``-discr_loss``."""
    return 0.5 * (F.log_softmax(logits_real, dim=1)[:, 0].mean()
                  + F.log_softmax(logits_perm, dim=1)[:, 1].mean()).neg()


def discriminator_accuracy(logits_real: torch.Tensor, logits_perm: torch.Tensor) -> torch.Tensor:
    """Fraction of the 2B codes classified correctly (0.5 is chance)."""
    right = (logits_real[:, 0] > logits_real[:, 1]).float().mean() + \
        (logits_perm[:, 1] >= logits_perm[:, 0]).float().mean()
    return 0.5 * right
