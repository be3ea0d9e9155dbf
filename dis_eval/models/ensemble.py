"""Packs: M models of one family and architecture as one module (docs/packs.md).

Explicit ensemble layers, each holding its M members' parameters stacked on a leading axis:
convolutions are one grouped ``conv2d`` / ``conv_transpose2d`` call with ``groups=M`` (bias inside
the call), dense layers one batched matmul (``baddbmm``). Activations travel as (B, M*C, H, W)
through the convolutions and as (M, B, F) through the dense layers.

The pack's ``state_dict`` has exactly the keys of a single model's, each tensor stacked on a new
leading member axis, so :func:`stack_state_dicts` / :func:`member_state_dict` convert between a
pack and M ordinary models, and a member's saved weights are an ordinary run's.

:class:`PackObjective` is ``dis_eval.models.losses.Objective`` for a pack: the cheap per-member
loss formulas are the single model's own functions mapped over members (``torch.vmap``); loss
weights (beta, TC weight) are (M,) tensors; the members' losses are summed before one backward.
Random numbers come from ``dis_eval.rng.Draws`` keyed by each member's seed, so member m draws
what the same seed draws alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dis_eval.models.clip import F_INPUT_SCALE, echo_terms
from dis_eval.models.discriminator import (
    discriminator_accuracy,
    discriminator_loss,
    permute_dims,
    tc_estimate,
)
from dis_eval.models.echo import echo_noise_from_orders, echo_rate_per_dim, orders_from_keys
from dis_eval.models.gaussian import gaussian_rate_per_dim, gaussian_sample
from dis_eval.models.losses import reconstruction_loss, term_names
from dis_eval.models.spec import ModelSpec
from dis_eval.rng import DRAW_LATENT, Draws


def _conv(op: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, stride: int, padding: int
          ) -> torch.Tensor:
    """M convolutions of a stacked weight (M, ...) on channel groups of x (B, M*C, H, W).

    On CUDA one grouped call (the step is bound by kernel launches: one launch for M models).
    On the CPU, where arithmetic dominates and oneDNN's grouped (transposed) convolutions were
    measured slower than the plain ones, one plain call per member on its channel slice: the
    same arithmetic as a single model's layer (docs/packs.md, "Ensemble layers").
    """
    m = weight.shape[0]
    if x.device.type == "cuda" or m == 1:
        return op(x, weight.flatten(0, 1), bias.flatten(), stride, padding, groups=m)
    parts = x.split(x.shape[1] // m, dim=1)  # (backward: one cat, not M zero-filled slices)
    return torch.cat([op(p, weight[i], bias[i], stride, padding) for i, p in enumerate(parts)], dim=1)


class PackConv2d(nn.Module):
    """M ``nn.Conv2d`` as one grouped convolution: (B, M*in, H, W) -> (B, M*out, H', W')."""

    def __init__(self, members: int, cin: int, cout: int, k: int, stride: int, padding: int) -> None:
        super().__init__()
        self.members, self.stride, self.padding = members, stride, padding
        self.weight = nn.Parameter(torch.empty(members, cout, cin, k, k))
        self.bias = nn.Parameter(torch.empty(members, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _conv(F.conv2d, x, self.weight, self.bias, self.stride, self.padding)


class PackConvTranspose2d(nn.Module):
    """M ``nn.ConvTranspose2d`` as one grouped transposed convolution."""

    def __init__(self, members: int, cin: int, cout: int, k: int, stride: int, padding: int) -> None:
        super().__init__()
        self.members, self.stride, self.padding = members, stride, padding
        self.weight = nn.Parameter(torch.empty(members, cin, cout, k, k))
        self.bias = nn.Parameter(torch.empty(members, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _conv(F.conv_transpose2d, x, self.weight, self.bias, self.stride, self.padding)


class PackLinear(nn.Module):
    """M ``nn.Linear`` as one batched matmul: (M, B, in) -> (M, B, out)."""

    def __init__(self, members: int, fin: int, fout: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, fout, fin))
        self.bias = nn.Parameter(torch.empty(members, fout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))


class ToMembers(nn.Module):
    """Convolution layout (B, M*C, H, W) -> dense layout (M, B, C*H*W) (``nn.Flatten`` per member)."""

    def __init__(self, members: int) -> None:
        super().__init__()
        self.members = members

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        return x.reshape(b, self.members, -1).transpose(0, 1)


def to_channels(x: torch.Tensor, channels: int, size: int) -> torch.Tensor:
    """Dense layout (M, B, C*size*size) -> convolution layout (B, M*C, size, size)."""
    m, b = x.shape[:2]
    return x.transpose(0, 1).reshape(b, m * channels, size, size)


class PackEncoder(nn.Module):
    """``ConvEncoder`` x M (same module names, so the state_dict keys match)."""

    def __init__(self, members: int, num_latents: int) -> None:
        super().__init__()
        m = members
        self.trunk = nn.Sequential(
            PackConv2d(m, 1, 32, 4, 2, 1), nn.ReLU(), PackConv2d(m, 32, 32, 4, 2, 1), nn.ReLU(),
            PackConv2d(m, 32, 64, 2, 2, 0), nn.ReLU(), PackConv2d(m, 64, 64, 2, 2, 0), nn.ReLU(),
            ToMembers(m), PackLinear(m, 64 * 4 * 4, 256), nn.ReLU(),
        )
        self.head_a = PackLinear(m, 256, num_latents)
        self.head_b = PackLinear(m, 256, num_latents)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, M, 64, 64): member m's images in channel m. Returns two (M, B, D)."""
        h = self.trunk(x)
        return self.head_a(h), self.head_b(h)


class PackDecoder(nn.Module):
    """``DeconvDecoder`` x M: z (M, B, D) -> logits (B, M, 64, 64)."""

    def __init__(self, members: int, num_latents: int) -> None:
        super().__init__()
        m = members
        self.fc = nn.Sequential(PackLinear(m, num_latents, 256), nn.ReLU(), PackLinear(m, 256, 1024), nn.ReLU())
        self.deconv = nn.Sequential(
            PackConvTranspose2d(m, 64, 64, 4, 2, 1), nn.ReLU(), PackConvTranspose2d(m, 64, 32, 4, 2, 1), nn.ReLU(),
            PackConvTranspose2d(m, 32, 32, 4, 2, 1), nn.ReLU(), PackConvTranspose2d(m, 32, 1, 4, 2, 1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.deconv(to_channels(self.fc(z), 64, 4))


class PackDiscriminator(nn.Module):
    """``Discriminator`` x M: codes (M, N, D) -> logits (M, N, 2)."""

    def __init__(self, members: int, num_latents: int, hidden: int = 1000, layers: int = 6) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        width = num_latents
        for _ in range(layers):
            mods += [PackLinear(members, width, hidden), nn.LeakyReLU(0.2)]
            width = hidden
        mods.append(PackLinear(members, width, 2))
        self.net = nn.Sequential(*mods)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class PackModel(nn.Module):
    """M Echo autoencoders or M Gaussian VAEs. ``encode(x (M, B, 1, 64, 64))`` -> (M, B, D) x 2,
    ``decode(z (M, B, D))`` -> logits (M, B, 1, 64, 64); the activations are the single models'."""

    def __init__(self, spec: ModelSpec, members: int) -> None:
        super().__init__()
        self.family, self.members, self.num_latents = spec.family, members, spec.latents
        self.memory_format = torch.contiguous_format  # of the (B, M, 64, 64) input to the convolutions
        self.encoder = PackEncoder(members, spec.latents)
        self.decoder = PackDecoder(members, spec.latents)
        if self.family == "echo":
            self.d_max = int(spec.d_max or 0)
            clip = float(spec.echo_clip or 0.0)
            self.register_buffer("log_clip", torch.full((members,), math.log(clip), dtype=torch.float32))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m, b = x.shape[:2]
        x = x.reshape(m, b, *x.shape[-2:]).transpose(0, 1).contiguous(memory_format=self.memory_format)
        return self._activate(*self.encoder(x))

    def encode_shared(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every member encodes the same images x (B, 1, 64, 64): (M, B, D) x 2. The first
        convolution is one ordinary conv with M*32 output channels (the input is not copied M
        times); the rest is the grouped encoder."""
        first = self.encoder.trunk[0]
        h = F.conv2d(x.contiguous(memory_format=self.memory_format), first.weight.flatten(0, 1),
                     first.bias.flatten(), first.stride, first.padding)
        h = self.encoder.trunk[1:](h)
        return self._activate(self.encoder.head_a(h), self.encoder.head_b(h))

    def _activate(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.family != "echo":
            return a, b
        return torch.tanh(a / F_INPUT_SCALE), self.log_clip.view(-1, 1, 1) + F.logsigmoid(b)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        logits = self.decoder(z)  # (B, M, 64, 64)
        return logits.transpose(0, 1).unsqueeze(2)

    def sample_latent(self, mean: torch.Tensor, aux: torch.Tensor, draws: Draws) -> torch.Tensor:
        if self.family != "echo":
            return gaussian_sample(mean, aux, draws)
        m, b, _ = mean.shape
        orders = orders_from_keys(draws.sort_keys(DRAW_LATENT, (m, b, b)), echo_terms(self.d_max, b))
        return mean + torch.exp(aux) * echo_noise_from_orders(mean, aux, orders)

    def rate_per_dim(self, mean: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
        """(M, D): the single models' rate per dimension, per member."""
        if self.family == "echo":
            return torch.vmap(echo_rate_per_dim)(aux)
        return torch.vmap(gaussian_rate_per_dim)(mean, aux)


# ---- stacking and unstacking ------------------------------------------------------------------

def stack_state_dicts(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """M single-model state_dicts (same keys) -> one pack state_dict."""
    keys = list(states[0])
    for s in states[1:]:
        if list(s) != keys:
            raise ValueError("the models of a pack must share one architecture (state_dict keys differ)")
    return {k: torch.stack([s[k] for s in states]) for k in keys}


def member_state_dict(pack_state: dict[str, torch.Tensor], m: int) -> dict[str, torch.Tensor]:
    """Member m's weights as an ordinary single-model state_dict (copies, contiguous)."""
    return {k: v[m].detach().clone().contiguous() for k, v in pack_state.items()}


def stack_modules(pack: nn.Module, singles: Sequence[nn.Module]) -> None:
    """Load M ordinary models (or discriminators) into ``pack`` (its members in order)."""
    pack.load_state_dict(stack_state_dicts([s.state_dict() for s in singles]))


def unstack_module(pack: nn.Module, m: int, single: nn.Module) -> nn.Module:
    """Member m of ``pack`` loaded into the ordinary model ``single`` (returned)."""
    single.load_state_dict(member_state_dict(pack.state_dict(), m))
    return single


# ---- the objective ----------------------------------------------------------------------------

@dataclass
class PackStepOutput:
    losses: torch.Tensor  # (M,) each member's objective (with graph)
    disc_losses: torch.Tensor | None  # (M,) the discriminators' objectives (with graph), if any
    terms: torch.Tensor  # (M, len(term_names)) detached
    rate_per_dim: torch.Tensor  # (M, D) detached


class PackObjective:
    """``Objective`` for a pack: reconstruction + beta_m * rate (+ w_m * TC) per member m."""

    def __init__(self, model: PackModel, betas: torch.Tensor, tc_weights: torch.Tensor,
                 discriminator: PackDiscriminator | None = None) -> None:
        if betas.shape != (model.members,) or tc_weights.shape != (model.members,):
            raise ValueError(f"loss weights must be ({model.members},) tensors")
        if bool((tc_weights > 0).any()) and discriminator is None:
            raise ValueError("a TC weight needs a discriminator")
        self.model, self.betas, self.tc_weights, self.discriminator = model, betas, tc_weights, discriminator
        self.term_names = term_names(model.family, discriminator is not None)
        self._model_params = [p for p in model.parameters() if p.requires_grad]
        self._disc_params = [] if discriminator is None else list(discriminator.parameters())

    def __call__(self, x: torch.Tensor, draws: Draws) -> PackStepOutput:
        """x (M, B, 1, 64, 64): member m's batch at x[m]."""
        mean, aux = self.model.encode(x)
        z = self.model.sample_latent(mean, aux, draws)
        logits = self.model.decode(z)
        recon = torch.vmap(reconstruction_loss)(logits, x)
        rate_dims = self.model.rate_per_dim(mean, aux)
        rate = rate_dims.sum(dim=1)
        loss = recon + self.betas * rate
        values = [recon, rate]
        disc_loss = None
        if self.discriminator is not None:
            z_perm = permute_dims(z.detach(), draws)
            both = self.discriminator(torch.cat([z, z_perm], dim=1))
            b = z.shape[1]
            real, perm = both[:, :b], both[:, b:]
            tc = torch.vmap(tc_estimate)(real)
            loss = loss + self.tc_weights * tc
            disc_loss = torch.vmap(discriminator_loss)(real, perm)
            values += [tc, disc_loss, torch.vmap(discriminator_accuracy)(real, perm)]
        terms = torch.stack([loss, *values], dim=1).detach()
        return PackStepOutput(loss, disc_loss, terms, rate_dims.detach())

    def backward(self, out: PackStepOutput, active: torch.Tensor) -> None:
        """One backward of the members' summed losses (retired members, ``active`` False,
        contribute nothing); each loss's gradients into its own parameters only."""
        zero = torch.zeros((), dtype=out.losses.dtype, device=out.losses.device)
        total = torch.where(active, out.losses, zero).sum()
        if out.disc_losses is None:
            total.backward()
            return
        total.backward(inputs=self._model_params, retain_graph=True)
        torch.where(active, out.disc_losses, zero).sum().backward(inputs=self._disc_params)
