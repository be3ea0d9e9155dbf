"""Counter-based random numbers: every draw is a pure function of (member seed, step, draw id,
element index), computed with int64 tensor arithmetic on the training device.

Why (docs/packs.md, "Random numbers"): a member of a pack must see the same batches and noise as
the same seed trained alone, whatever the pack's size or its position in it; and a run's random
streams then depend only on its seed and the step, so resuming needs no generator state. The
step counter is a device tensor read by the ops themselves, so no host sync is needed and the
draws replay correctly inside a CUDA graph.

The hash is SplitMix64's finaliser (Steele, Lea and Flood 2014, "Fast splittable pseudorandom
number generators"; the ``mix64`` of Java's SplittableRandom), a bijection on 64-bit words with
full avalanche. A key is chained through it: ``k = mix(mix(mix(seed) + step) + draw)``, and
element ``i`` of a draw is ``mix(k + (i + 1) * GOLDEN)``. int64 multiplication and addition wrap
modulo 2^64 on every PyTorch backend; right shifts are made logical with a mask.

From the 64 random bits: uniforms in [0, 1) from the top 53 bits (float64), normals by
Box-Muller from two uniforms, integers in [0, n) as floor(u n) (bias < n / 2^53), and random
orderings by argsort of the bits themselves (ties have probability 2^-63 per pair).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15  # 2^64 / golden ratio, SplitMix64's increment
MUL1 = 0xBF58476D1CE4E5B9
MUL2 = 0x94D049BB133111EB
TWO_POW_M53 = 2.0 ** -53

# Draw ids: one per random stream of a training step (never reuse an id for another purpose).
DRAW_BATCH = 1  # batch positions
DRAW_LATENT = 2  # Gaussian reparameterisation noise / Echo orderings
DRAW_PERMUTE = 3  # FactorVAE's per-dimension permutation across the batch


def _signed(x: int) -> int:
    """A 64-bit word as the int64 value with the same bits."""
    x &= MASK64
    return x - (1 << 64) if x >= 1 << 63 else x


def mix64_int(x: int) -> int:
    """SplitMix64's finaliser on a Python int (host side; same bits as :func:`mix64`)."""
    z = (x + GOLDEN) & MASK64
    z = ((z ^ (z >> 30)) * MUL1) & MASK64
    z = ((z ^ (z >> 27)) * MUL2) & MASK64
    return z ^ (z >> 31)


def _shr(z: torch.Tensor, k: int) -> torch.Tensor:
    """Logical right shift of int64 words."""
    return (z >> k) & ((1 << (64 - k)) - 1)


def mix64(x: torch.Tensor) -> torch.Tensor:
    """SplitMix64's finaliser, elementwise on an int64 tensor (wrapping arithmetic)."""
    z = x + _signed(GOLDEN)
    z = (z ^ _shr(z, 30)) * _signed(MUL1)
    z = (z ^ _shr(z, 27)) * _signed(MUL2)
    return z ^ _shr(z, 31)


def seed_key(seed: int) -> int:
    """A member's root key (int64 value) from its seed."""
    if seed < 0:
        raise ValueError(f"seeds are >= 0, got {seed}")
    return _signed(mix64_int(seed))


class Draws:
    """The random numbers of one training step for one model (``seeds`` a scalar tensor) or for a
    pack (``seeds`` (M,)): every output's leading axis is then the member axis, and member m's
    slice equals what a single model with seed m draws.

    ``step``: an int64 device tensor holding the 0-based index of the step being taken; it is read
    when the draw runs (so one ``Draws`` serves every step, eagerly or in a CUDA graph).
    """

    def __init__(self, keys: torch.Tensor, step: torch.Tensor) -> None:
        import torch

        if keys.dtype != torch.int64 or step.dtype != torch.int64 or step.ndim != 0:
            raise ValueError("Draws needs int64 keys and an int64 scalar step")
        if keys.ndim > 1:
            raise ValueError(f"keys must be a scalar (one model) or (M,) (a pack), got shape {tuple(keys.shape)}")
        self.keys, self.step = keys, step

    @classmethod
    def for_seeds(cls, seeds: int | list[int], step: torch.Tensor) -> Draws:
        """Keys for one seed (an int: one model) or a list of seeds (a pack), on ``step``'s device."""
        import torch

        many = isinstance(seeds, list)
        keys = [seed_key(s) for s in (seeds if many else [seeds])]
        t = torch.tensor(keys, dtype=torch.int64, device=step.device)
        return cls(t if many else t[0], step)

    @property
    def members(self) -> int | None:
        """M for a pack, None for one model."""
        return None if self.keys.ndim == 0 else int(self.keys.shape[0])

    def bits(self, draw: int, shape: tuple[int, ...] | torch.Size) -> torch.Tensor:
        """Random int64 words of ``shape`` (a pack's shapes start with M) for stream ``draw``."""
        import torch

        shape = tuple(int(s) for s in shape)
        lead = 0 if self.keys.ndim == 0 else 1
        if lead and (not shape or shape[0] != self.keys.shape[0]):
            raise ValueError(f"a pack's draws need the member axis first: shape {shape}, M = {self.keys.shape[0]}")
        inner = shape[lead:]
        key = mix64(mix64(self.keys + self.step) + draw)  # () or (M,)
        n = math.prod(inner)
        idx = torch.arange(1, n + 1, dtype=torch.int64, device=self.keys.device) * _signed(GOLDEN)
        key = key.view(-1, 1) if lead else key
        return mix64(key + idx).view(shape)

    def uniform(self, draw: int, shape: tuple[int, ...] | torch.Size) -> torch.Tensor:
        """float64 uniforms in [0, 1) with 53 random bits."""
        import torch

        return _shr(self.bits(draw, shape), 11).to(torch.float64) * TWO_POW_M53

    def normal(self, draw: int, shape: tuple[int, ...] | torch.Size, dtype: torch.dtype | None = None
               ) -> torch.Tensor:
        """Standard normals (Box-Muller on two uniforms per element, computed in float64)."""
        import torch

        shape = tuple(int(s) for s in shape)
        lead = 0 if self.keys.ndim == 0 else 1
        w = self.bits(draw, (*shape[:lead], 2, *shape[lead:]))
        u1 = (_shr(w.select(lead, 0), 11).to(torch.float64) + 1.0) * TWO_POW_M53  # (0, 1]
        u2 = _shr(w.select(lead, 1), 11).to(torch.float64) * TWO_POW_M53
        z = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos((2.0 * math.pi) * u2)
        return z if dtype is None else z.to(dtype)

    def randint(self, draw: int, high: int, shape: tuple[int, ...] | torch.Size) -> torch.Tensor:
        """int64 uniform integers in [0, high)."""
        import torch

        if high < 1:
            raise ValueError(f"randint needs high >= 1, got {high}")
        u = self.uniform(draw, shape)
        return torch.clamp((u * high).to(torch.int64), max=high - 1)

    def sort_keys(self, draw: int, shape: tuple[int, ...] | torch.Size) -> torch.Tensor:
        """Non-negative int64 keys (63 random bits) whose argsort along an axis is a uniformly
        random ordering of it; ``SORT_KEY_MAX`` exceeds every key (to sort an element last)."""
        return _shr(self.bits(draw, shape), 1)


SORT_KEY_MAX = (1 << 63) - 1
