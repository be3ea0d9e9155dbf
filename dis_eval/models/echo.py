"""Echo noise (Brekelmans et al. 2019, "Exact Rate-Distortion in Autoencoders via Echo Noise").

Channel (Sec. 2, Eq. 1-3): z_i = f(x_i) + S(x_i) eps_i with
eps_i = f(x_l1) + S(x_l1) f(x_l2) + S(x_l1) S(x_l2) f(x_l3) + ..., where l1, l2, ... are the
*other* members of the batch in an independent random order per example (without replacement,
excluding i; redrawn every call). Diagonal S, so each term is an exclusive cumulative product of
scales times the next f, computed in log space.

Rate (Theorem 2.2, diagonal S): I(x; z) = -E_x sum_j log s_j(x), exact, with log s including the
clip factor r.

Clip factor (App. B): with |f| <= M and every scale <= r, the remainder after d terms is at most
M r^d / (1 - r); r solves M r^d / (1 - r) = precision (float32: 2^-23). This module is the one place
that computes it.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from scipy.optimize import brentq
from torch import nn

from dis_eval.models.architecture import ConvEncoder, DeconvDecoder, glorot_init_

FLOAT32_PRECISION = 2.0**-23
# f = tanh(a / 16) (the authors' "tanh16" for dSprites): bounded by M = 1, wider linear range.
F_INPUT_SCALE = 16.0
F_BOUND = 1.0


@lru_cache(maxsize=64)
def clip_factor(d_max: int, f_bound: float = F_BOUND, precision: float = FLOAT32_PRECISION) -> float:
    """The largest scale r with M r^d_max / (1 - r) = precision (App. B), by Brent's method.

    d_max = 64 gives 0.7622 (the authors' dSprites value), 63 gives 0.7591, 100 gives 0.8373.
    """
    if d_max < 1:
        raise ValueError(f"d_max must be >= 1, got {d_max}")
    if f_bound <= 0 or not 0 < precision < 1:
        raise ValueError("f_bound must be > 0 and precision in (0, 1)")

    # Solve in log space: d log r - log(1 - r) - log(precision / M) = 0, increasing in r.
    target = math.log(precision / f_bound)

    def g(r: float) -> float:
        return d_max * math.log(r) - math.log1p(-r) - target

    lo, hi = 1e-300, 1.0 - 1e-15
    if g(lo) > 0:  # precision >= M / (1 - 0): any r works; no finite clip needed
        raise ValueError("precision is not below the bound M; the clip factor is undefined")
    return float(brentq(g, lo, hi, xtol=1e-15, rtol=8.9e-16, maxiter=500))


def truncation_bound(r: float, terms: int, f_bound: float = F_BOUND) -> float:
    """Upper bound on the Echo sum's remainder after ``terms`` terms: M r^terms / (1 - r)."""
    return f_bound * r**terms / (1.0 - r)


def echo_terms(d_max: int, batch_size: int) -> int:
    """Terms actually summed: sampling without replacement, excluding self, leaves B - 1 others."""
    return max(0, min(d_max, batch_size - 1))


def other_member_orders(batch_size: int, terms: int, generator: torch.Generator | None,
                        device: torch.device) -> torch.Tensor:
    """(B, terms) int64: row i is a uniformly random ordering of ``terms`` batch members != i.

    Argsort of i.i.d. uniform keys is a uniform permutation; the own key is set above every
    other key so that i sorts last and is cut off. Float64 keys make ties (which would bias the
    order towards lower indices) negligible.
    """
    keys = torch.rand(batch_size, batch_size, generator=generator, device=device, dtype=torch.float64)
    keys.fill_diagonal_(2.0)
    return keys.argsort(dim=1)[:, :terms]


def echo_noise(f: torch.Tensor, log_s: torch.Tensor, terms: int,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Echo noise eps (B, D) from the batch's own f (B, D) and log s (B, D) (log s includes log r).

    eps_i = sum_{k<terms} exp(sum_{m<k} log s_{l_m}) f_{l_k} over a fresh random ordering l of the
    other members. Gradients flow through f and log s of the other examples (never detached).
    """
    batch, _ = f.shape
    if terms > batch - 1:
        raise ValueError(f"at most B - 1 = {batch - 1} Echo terms exist in a batch of {batch}, asked {terms}")
    if terms < 1:
        raise ValueError(f"Echo noise needs a batch of at least 2 (got {batch})")
    order = other_member_orders(batch, terms, generator, f.device)  # (B, T)
    f_sel = f[order]  # (B, T, D)
    ls_sel = log_s[order]
    # Exclusive cumulative sum along the echo axis: term 0 has scale product 1.
    excl = torch.cumsum(ls_sel[:, :-1], dim=1)
    excl = F.pad(excl, (0, 0, 1, 0))
    return (torch.exp(excl) * f_sel).sum(dim=1)


def echo_sample(f: torch.Tensor, log_s: torch.Tensor, terms: int,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Channel output z = f + s * eps (Eq. 1)."""
    return f + torch.exp(log_s) * echo_noise(f, log_s, terms, generator)


def echo_rate_per_example(log_s: torch.Tensor) -> torch.Tensor:
    """Pointwise rate -sum_j log s_j(x) (N,): Theorem 2.2 for diagonal S. Depends on s only."""
    return -log_s.sum(dim=1)


class EchoAutoencoder(nn.Module):
    """disentanglement_lib's conv encoder/decoder with the Echo channel in between.

    ``encode(x) -> (f(x), log s(x))`` with f = tanh(a/16) and log s = log r + logsigmoid(b),
    r = ``clip_factor(d_max)``.
    """

    family = "echo"

    def __init__(self, num_latents: int = 10, d_max: int = 64,
                 precision: float = FLOAT32_PRECISION) -> None:
        super().__init__()
        self.num_latents = num_latents
        self.d_max = int(d_max)
        self.clip = clip_factor(self.d_max, F_BOUND, precision)
        # A buffer so that a saved model carries the clip it was trained with.
        self.register_buffer("log_clip", torch.tensor(math.log(self.clip), dtype=torch.float32))
        self.encoder = ConvEncoder(num_latents)
        self.decoder = DeconvDecoder(num_latents)
        glorot_init_(self)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = self.encoder(x)
        f = torch.tanh(a / F_INPUT_SCALE)
        log_s = self.log_clip + F.logsigmoid(b)
        return f, log_s

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def sample_latent(self, mean: torch.Tensor, aux: torch.Tensor,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        return echo_sample(mean, aux, echo_terms(self.d_max, mean.shape[0]), generator)

    def rate_per_dim(self, mean: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
        """Batch mean of -log s_j (D,): the exact I(x; z_j) estimate; its sum is the rate."""
        del mean  # the rate never depends on f
        return -aux.mean(dim=0)
