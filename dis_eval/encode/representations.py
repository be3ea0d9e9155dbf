"""Representations: the callables a metric samples codes from, ``positions -> (len, D)``.

- ``mean``: the cached codes (encoder means / f(x)); independent of how rows are batched.
- ``sample``: the noisy Echo/VAE sample drawn afresh from the cached (mean, aux) on every
  call, the Echo noise of each row coming from the other rows of its call's batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dis_eval.errors import UserError

if TYPE_CHECKING:
    from dis_eval.encode.codes import EncodedData
    from dis_eval.encode.encoding import LazyCodes

# The representations a metric can be fed (the one list; docs/evaluation-protocols.md).
REPRESENTATIONS: tuple[str, ...] = ("mean", "sample")


class MeanRepresentation:
    """positions -> cached codes (the deterministic mean / f(x)); independent of batching."""

    batch_invariant = True

    def __init__(self, codes: EncodedData | LazyCodes) -> None:
        self.source = codes
        self.kind = "mean"

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        positions = np.asarray(positions, dtype=np.int64)
        self.source.ensure(positions)  # encodes rows on demand (LazyCodes); a no-op otherwise
        return self.source.mean[positions]


class SampleRepresentation:
    """The noisy sample, drawn afresh on every call from the cached (mean, aux).

    Echo: z = f + s * eps with eps the Echo noise over the *call's batch* (each observation's
    noise comes from min(d_max, B - 1) other members of its batch, a fresh random order per
    member), as the authors' evaluation fed its metric batches of 64 through the channel.
    VAE: z = mean + exp(logvar / 2) * eps, eps ~ N(0, I). Noise comes from this object's own
    generator (seeded), never from the metric's random state, so the metric's draws of rows
    are the same as with the mean representation.
    """

    batch_invariant = False

    def __init__(self, codes: EncodedData | LazyCodes, seed: int = 0, d_max: int | None = None) -> None:
        codes.ensure_some()  # learn the family and whether aux exists (LazyCodes)
        if codes.aux is None or codes.family not in ("echo", "vae"):
            raise UserError("the sample representation needs an Echo or VAE model's (mean, aux) codes; "
                            "these codes have no aux/family: use --representation mean")
        self.family = codes.family
        self.codes = codes
        self.d_max = int(d_max or codes.d_max or 64)
        self.rng = np.random.default_rng(seed)
        self.kind = "sample"

    def batched(self, positions: np.ndarray) -> np.ndarray:
        """(nb, B) positions -> (nb, B, D): each row of ``positions`` is one noise batch."""
        positions = np.asarray(positions, dtype=np.int64)
        self.codes.ensure(positions)
        f = self.codes.mean[positions].astype(np.float64)
        a = self.codes.aux[positions].astype(np.float64)
        if self.family == "vae":
            return f + np.exp(a / 2.0) * self.rng.standard_normal(f.shape)
        nb, b = positions.shape
        terms = max(0, min(self.d_max, b - 1))
        if terms == 0:
            return f
        out = np.empty_like(f)
        step = max(1, 2**21 // (b * terms * f.shape[2]))  # bound the (chunk, B, T, D) buffer
        for lo in range(0, nb, step):
            fc, ac = f[lo: lo + step], a[lo: lo + step]
            keys = self.rng.random((fc.shape[0], b, b))
            keys[:, np.arange(b), np.arange(b)] = 2.0  # self sorts last and is cut off
            orders = np.argsort(keys, axis=-1)[..., :terms]
            out[lo: lo + step] = fc + np.exp(ac) * _echo_noise(fc, ac, orders)
        return out

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        positions = np.asarray(positions, dtype=np.int64)
        return self.batched(positions[None])[0]


def _echo_noise(f: np.ndarray, log_s: np.ndarray, orders: np.ndarray) -> np.ndarray:
    """The models' Echo noise (``dis_eval.models.echo.echo_noise_from_orders``) on float64 arrays."""
    import torch

    from dis_eval.models.echo import echo_noise_from_orders

    return echo_noise_from_orders(torch.from_numpy(f), torch.from_numpy(log_s), torch.from_numpy(orders)).numpy()


def representation(codes: EncodedData | LazyCodes, kind: str = "mean", seed: int = 0,
                   d_max: int | None = None) -> MeanRepresentation | SampleRepresentation:
    """The callable a metric samples from: ``positions -> (len, D)`` codes."""
    if kind == "mean":
        return MeanRepresentation(codes)
    if kind == "sample":
        return SampleRepresentation(codes, seed, d_max)
    raise UserError(f"unknown representation {kind!r}; choose one of {REPRESENTATIONS}")
