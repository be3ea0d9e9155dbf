"""Echo noise (Brekelmans et al. 2019, "Exact Rate-Distortion in Autoencoders via Echo Noise").

Channel (Sec. 2, Eq. 1-3): z_i = f(x_i) + S(x_i) eps_i with
eps_i = f(x_l1) + S(x_l1) f(x_l2) + S(x_l1) S(x_l2) f(x_l3) + ..., where l1, l2, ... are the
*other* members of the batch in an independent random order per example (without replacement,
excluding i; redrawn every call). Diagonal S, so each term is an exclusive cumulative product of
scales times the next f, computed in log space.

Rate (Theorem 2.2, diagonal S): I(x; z) = -E_x sum_j log s_j(x), exact, with log s including the
clip factor r.

Clip factor (App. B): computed in ``dis_eval.models.clip``; f = tanh(a / 16) keeps |f| <= M = 1.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dis_eval.models.architecture import ConvEncoder, DeconvDecoder, glorot_init_
from dis_eval.models.clip import F_INPUT_SCALE, clip_factor, echo_terms
from dis_eval.rng import DRAW_LATENT, SORT_KEY_MAX, Draws


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


def orders_from_keys(keys: torch.Tensor, terms: int) -> torch.Tensor:
    """Orders as :func:`other_member_orders` builds them, from given random sort keys (B, B), or a
    stack (nb, B, B), of non-negative int64 keys (``dis_eval.rng.Draws.sort_keys``): row i's own
    key is set above every other so that i sorts last and is cut off. Returns (..., B, terms)."""
    own = torch.eye(keys.shape[-1], dtype=torch.bool, device=keys.device)
    return keys.masked_fill(own, SORT_KEY_MAX).argsort(dim=-1)[..., :terms]


def member_inverse(orders: torch.Tensor, batch_size: int) -> torch.Tensor:
    """(nb, B, B) int64 from orders (nb, B, T): entry [n, i, j] is the position t of member j in
    row i's order (orders[n, i, t] == j), or T where j is not among row i's T terms.

    A plain scatter: the indices of one row are distinct, so no two writes meet (exact, and the
    same on every device and thread count).
    """
    nb, rows, terms = orders.shape
    inv = torch.full((nb, rows, batch_size), terms, dtype=torch.int64, device=orders.device)
    pos = torch.arange(terms, device=orders.device).expand(nb, rows, terms)
    return inv.scatter(2, orders, pos)  # out of place: also under torch.func.vmap


def _gather_grad(grad: torch.Tensor, inv: torch.Tensor) -> torch.Tensor:
    """The gradient of x[n, orders[n]] w.r.t. x (nb, B, D), from grad (nb, B, T, D), in a fixed order.

    grad_x[n, j] = sum over rows i (ascending) of grad[n, i, inv[n, i, j]], where position T is a
    zero row: a gather (each output read once, no accumulation into shared memory) followed by a
    plain reduction over i. Autograd's own backward of the gather is an accumulating scatter
    (``index_put_(accumulate=True)``) whose summation order depends on thread scheduling.
    """
    nb, rows, _, dim = grad.shape
    padded = F.pad(grad, (0, 0, 0, 1))  # (nb, B, T + 1, D): row T is zeros
    picked = padded.gather(2, inv.unsqueeze(-1).expand(nb, rows, inv.shape[-1], dim))  # (nb, B_i, B_j, D)
    return picked.sum(dim=1)


class _MemberGather(torch.autograd.Function):
    """(f[n, orders[n]], log_s[n, orders[n]]) for stacked batches (nb, B, D), orders (nb, B, T).

    Forward: the same exact selection as indexing. Backward: ``_gather_grad`` (fixed summation
    order, so bit-identical gradients run to run at a fixed thread count; no host sync and static
    shapes, so it is captured by CUDA graphs). Written with ``setup_context`` and plain tensor ops
    so that ``torch.func.vmap`` (the packs' oracle and loss) derives its batching rule.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(f: torch.Tensor, log_s: torch.Tensor, orders: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch = torch.arange(f.shape[0], device=f.device).view(-1, 1, 1)
        return f[batch, orders], log_s[batch, orders]

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        f, _, orders = inputs
        ctx.save_for_backward(orders)
        ctx.batch_size = f.shape[1]

    @staticmethod
    def backward(ctx: Any, grad_f: torch.Tensor, grad_ls: torch.Tensor
                 ) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        (orders,) = ctx.saved_tensors
        inv = member_inverse(orders, ctx.batch_size)
        gf = _gather_grad(grad_f, inv) if ctx.needs_input_grad[0] else None
        gl = _gather_grad(grad_ls, inv) if ctx.needs_input_grad[1] else None
        return gf, gl, None


def gather_members(f: torch.Tensor, log_s: torch.Tensor,
                   orders: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(f[orders], log_s[orders]): (B, T, D) from (B, D) and (B, T), or (nb, B, T, D) from a stack
    (nb, B, D) and (nb, B, T); values exactly those of indexing, gradients summed in a fixed order
    (see ``_MemberGather``)."""
    if f.ndim == 2:
        f_sel, ls_sel = _MemberGather.apply(f.unsqueeze(0), log_s.unsqueeze(0), orders.unsqueeze(0))
        return f_sel.squeeze(0), ls_sel.squeeze(0)
    return _MemberGather.apply(f, log_s, orders)


def echo_noise_from_orders(f: torch.Tensor, log_s: torch.Tensor, orders: torch.Tensor) -> torch.Tensor:
    """Echo noise from f and log s (B, D) and the other members' orders (B, T); or a stack of
    independent batches: (nb, B, D) and (nb, B, T). The one implementation of Eq. 2.

    eps_i = sum_{k<T} exp(sum_{m<k} log s_{l_m}) f_{l_k}, l = orders[i]: the products of scales
    are an exclusive cumulative sum in log space (term 0 has scale product 1). Gradients flow
    through f and log s of the other members (never detached), summed in a fixed order
    (``gather_members``): same seed, device and thread count give bit-identical gradients.
    """
    f_sel, ls_sel = gather_members(f, log_s, orders)  # (B, T, D) or (nb, B, T, D)
    excl = F.pad(torch.cumsum(ls_sel[..., :-1, :], dim=-2), (0, 0, 1, 0))
    return (torch.exp(excl) * f_sel).sum(dim=-2)


def echo_noise(f: torch.Tensor, log_s: torch.Tensor, terms: int,
               generator: torch.Generator | Draws | None = None) -> torch.Tensor:
    """Echo noise eps (B, D) from the batch's own f (B, D) and log s (B, D) (log s includes log r),
    over a fresh random ordering of the other members per example (from a torch generator, or
    from counter-based draws: training)."""
    batch, _ = f.shape
    if terms > batch - 1:
        raise ValueError(f"at most B - 1 = {batch - 1} Echo terms exist in a batch of {batch}, asked {terms}")
    if terms < 1:
        raise ValueError(f"Echo noise needs a batch of at least 2 (got {batch})")
    if isinstance(generator, Draws):
        orders = orders_from_keys(generator.sort_keys(DRAW_LATENT, (batch, batch)), terms)
    else:
        orders = other_member_orders(batch, terms, generator, f.device)
    return echo_noise_from_orders(f, log_s, orders)


def echo_sample(f: torch.Tensor, log_s: torch.Tensor, terms: int,
                generator: torch.Generator | Draws | None = None) -> torch.Tensor:
    """Channel output z = f + s * eps (Eq. 1)."""
    return f + torch.exp(log_s) * echo_noise(f, log_s, terms, generator)


def echo_rate_per_example(log_s: torch.Tensor) -> torch.Tensor:
    """Pointwise rate -sum_j log s_j(x) (N,): Theorem 2.2 for diagonal S. Depends on s only."""
    return -log_s.sum(dim=1)


def echo_rate_per_dim(log_s: torch.Tensor) -> torch.Tensor:
    """Batch mean of -log s_j (D,): the exact I(x; z_j) estimate; its sum is the rate."""
    return -log_s.mean(dim=0)


class EchoAutoencoder(nn.Module):
    """disentanglement_lib's conv encoder/decoder with the Echo channel in between.

    ``encode(x) -> (f(x), log s(x))`` with f = tanh(a/16) and log s = log r + logsigmoid(b),
    r = ``clip_factor(d_max)``.
    """

    family = "echo"

    def __init__(self, num_latents: int = 10, d_max: int = 64, clip: float | None = None) -> None:
        super().__init__()
        self.num_latents = num_latents
        self.d_max = int(d_max)
        # ModelSpec.echo_clip passes the clip it computed; built directly, the default precision.
        self.clip = clip_factor(self.d_max) if clip is None else float(clip)
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
                      generator: torch.Generator | Draws | None = None) -> torch.Tensor:
        return echo_sample(mean, aux, echo_terms(self.d_max, mean.shape[0]), generator)

    def rate_per_dim(self, mean: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
        del mean  # the rate never depends on f
        return echo_rate_per_dim(aux)
