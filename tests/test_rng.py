"""The counter-based generator (dis_eval.rng): the hash is SplitMix64's, and its uniforms, normals,
integers and orderings have the right statistics and are independent across seeds, steps, draws
and elements. Fixed keys: every number here is deterministic, so the bounds cannot flake."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from dis_eval.rng import MASK64, Draws, mix64, mix64_int, seed_key

N = 200_000


def _draws(seed: int = 7, step: int = 0) -> Draws:
    return Draws.for_seeds(seed, torch.tensor(step, dtype=torch.int64))


def test_hash_is_splitmix64() -> None:
    # SplitMix64 seeded with 0: the first outputs (reference values of Vigna's splitmix64.c).
    assert mix64_int(0) == 0xE220A8397B1DCDAF
    assert mix64_int(0x9E3779B97F4A7C15) == 0x6E789E6AA1B965F4
    xs = [0, 1, 5, 2**62 + 17, 2**63 - 1, 2**63, 2**64 - 1]
    signed = [x - 2**64 if x >= 2**63 else x for x in xs]
    got = mix64(torch.tensor(signed, dtype=torch.int64)).tolist()
    assert [g & MASK64 for g in got] == [mix64_int(x) for x in xs]


def test_uniforms_are_uniform() -> None:
    u = _draws().uniform(1, (N,)).numpy()
    assert u.min() >= 0 and u.max() < 1
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    counts = np.bincount((u * 64).astype(int), minlength=64)
    assert stats.chisquare(counts).pvalue > 1e-3
    # Every bit of the words is fair.
    bits = _draws().bits(1, (N,)).numpy().view(np.uint64)
    ones = np.array([((bits >> np.uint64(k)) & np.uint64(1)).mean() for k in range(64)])
    assert np.abs(ones - 0.5).max() < 5 / math.sqrt(N)


@pytest.mark.parametrize("other", ["seed", "step", "draw", "shift"])
def test_streams_are_independent(other: str) -> None:
    a = _draws(7, 3).uniform(1, (N + 1,)).numpy()
    b = {"seed": _draws(8, 3).uniform(1, (N + 1,)).numpy(),
         "step": _draws(7, 4).uniform(1, (N + 1,)).numpy(),
         "draw": _draws(7, 3).uniform(2, (N + 1,)).numpy(),
         "shift": np.roll(a, 1)}[other]
    a, b = a[1:], b[1:]
    assert not np.array_equal(a, b)
    assert abs(np.corrcoef(a, b)[0, 1]) < 4 / math.sqrt(N)
    # Joint uniformity on an 8 x 8 grid (catches dependence a correlation misses).
    joint = np.bincount((a * 8).astype(int) * 8 + (b * 8).astype(int), minlength=64)
    assert stats.chisquare(joint).pvalue > 1e-3


def test_normals_moments() -> None:
    z = _draws().normal(2, (N,)).numpy()
    se = 1 / math.sqrt(N)
    assert abs(z.mean()) < 4 * se
    assert abs(z.var() - 1) < 4 * math.sqrt(2) * se
    assert abs(stats.skew(z)) < 4 * math.sqrt(6) * se
    assert abs(stats.kurtosis(z)) < 4 * math.sqrt(24) * se
    assert stats.kstest(z, "norm").pvalue > 1e-3
    assert _draws().normal(2, (3, 4), torch.float32).dtype == torch.float32


def test_randint_uniform_over_range() -> None:
    r = _draws().randint(1, 10, (N,)).numpy()
    assert r.min() == 0 and r.max() == 9
    assert stats.chisquare(np.bincount(r, minlength=10)).pvalue > 1e-3
    with pytest.raises(ValueError):
        _draws().randint(1, 0, (3,))


def test_sort_keys_give_uniform_orderings() -> None:
    keys = _draws().sort_keys(3, (24_000, 4))
    assert int(keys.min()) >= 0
    perms = keys.argsort(dim=1).numpy()
    code = perms @ np.array([64, 16, 4, 1])
    counts = np.unique(code, return_counts=True)[1]
    assert len(counts) == 24  # all 4! orderings appear, equally often
    assert stats.chisquare(counts).pvalue > 1e-3


def test_pack_member_sees_what_the_same_seed_sees_alone() -> None:
    step = torch.tensor(11, dtype=torch.int64)
    pack = Draws.for_seeds([4, 0, 9], step)
    alone = Draws.for_seeds(0, step)
    assert pack.members == 3 and alone.members is None
    assert torch.equal(pack.normal(2, (3, 5, 6))[1], alone.normal(2, (5, 6)))
    assert torch.equal(pack.randint(1, 100, (3, 8))[1], alone.randint(1, 100, (8,)))
    assert torch.equal(pack.sort_keys(3, (3, 4, 4))[1], alone.sort_keys(3, (4, 4)))
    with pytest.raises(ValueError, match="member axis"):
        pack.normal(2, (5, 6))


def test_step_tensor_is_read_when_the_draw_runs() -> None:
    step = torch.zeros((), dtype=torch.int64)
    d = Draws.for_seeds(1, step)
    first = d.bits(1, (4,))
    step += 1
    second = d.bits(1, (4,))
    step -= 1
    assert not torch.equal(first, second)
    assert torch.equal(first, d.bits(1, (4,)))


def test_seed_keys_distinct_and_checked() -> None:
    keys = {seed_key(s) for s in range(10_000)}
    assert len(keys) == 10_000
    with pytest.raises(ValueError):
        seed_key(-1)
