"""Same config, same seed, same device and thread count: bit-identical training, for every family.

- The member gather of Echo noise (``dis_eval.models.echo.gather_members``) selects exactly what
  indexing selects, its gradient is autograd's up to summation order, and repeated backward
  passes are bit-identical at the default thread count.
- Two uninterrupted runs of each family (tests.det_runner's small config; the Echo families at
  batch 64 with 63 terms, large enough that torch's CPU kernels run multi-threaded) give bit-identical
  checkpoint.pt and model.pt, in fresh processes at torch's default thread count and at 2
  threads set explicitly (a user on 2 cores). Before the fixed-order gather, Echo's runs
  differed here in most tensors after a few steps.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dis_eval.models.echo import echo_noise_from_orders, gather_members, other_member_orders
from tests.conftest import run_det_runner
from tests.det_runner import MODEL_NAMES, assert_same_run, run_dir


def _inputs(shape: tuple[int, ...], terms: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    f = (torch.rand(shape, generator=g) * 2 - 1).requires_grad_()
    log_s = (-2 * torch.rand(shape, generator=g)).requires_grad_()
    stack = shape[:-2] or (1,)
    orders = torch.stack([other_member_orders(shape[-2], terms, g, f.device) for _ in range(stack[0])])
    return f, log_s, orders.reshape(*shape[:-2], shape[-2], terms)


def _indexed(f: torch.Tensor, log_s: torch.Tensor, orders: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The formulation before: advanced indexing (autograd's accumulating-scatter backward)."""
    if f.ndim == 2:
        return f[orders], log_s[orders]
    batch = torch.arange(f.shape[0]).view(-1, 1, 1)
    return f[batch, orders], log_s[batch, orders]


@pytest.mark.parametrize(("shape", "terms"), [((64, 10), 63), ((64, 10), 20), ((3, 32, 6), 31), ((2, 5, 4), 1)])
def test_gather_members_forward_exact_gradient_matches_indexing(shape: tuple[int, ...], terms: int) -> None:
    f, log_s, orders = _inputs(shape, terms)
    got, want = gather_members(f, log_s, orders), _indexed(f, log_s, orders)
    for a, b in zip(got, want, strict=True):
        assert a.shape == b.shape and torch.equal(a, b)
    g = torch.Generator().manual_seed(1)
    w_f, w_s = torch.randn(got[0].shape, generator=g), torch.randn(got[1].shape, generator=g)
    new = torch.autograd.grad((got[0] * w_f).sum() + (got[1] * w_s).sum(), (f, log_s))
    old = torch.autograd.grad((want[0] * w_f).sum() + (want[1] * w_s).sum(), (f, log_s))
    # Each entry sums at most B terms of size <= |w| ~ 4: fp32 summation error is ~1e-5 at most.
    for a, b in zip(new, old, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=2e-5)
    # A member absent from every row's order gets exactly zero gradient.
    used = torch.zeros(f.shape[:-1], dtype=torch.bool).scatter_(-1, orders.reshape(*f.shape[:-2], -1), True)
    assert torch.all(new[0][~used] == 0)


def test_echo_noise_backward_is_bit_identical_run_to_run() -> None:
    """At the default thread count and a size where the backward runs multi-threaded."""
    f, log_s, orders = _inputs((256, 10), 64, seed=3)
    f3, log_s3, orders3 = _inputs((4, 64, 10), 63, seed=4)

    def grads() -> list[torch.Tensor]:
        f.grad = log_s.grad = f3.grad = log_s3.grad = None
        (echo_noise_from_orders(f, log_s, orders).square().sum()
         + echo_noise_from_orders(f3, log_s3, orders3).square().sum()).backward()
        return [f.grad.clone(), log_s.grad.clone(), f3.grad.clone(), log_s3.grad.clone()]

    first = grads()
    assert all(bool(g.abs().sum() > 0) for g in first)
    for _ in range(20):
        assert all(torch.equal(a, b) for a, b in zip(first, grads(), strict=True))


@pytest.fixture(scope="module")
def two_thread_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("two_threads")
    done = run_det_runner(out, "--copies", "2", "--threads", "2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "2"
    return out


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_same_seed_runs_identical_at_default_threads(model: str, default_thread_runs: Path) -> None:
    assert_same_run(run_dir(default_thread_runs, model, 0, 2), run_dir(default_thread_runs, model, 1, 2))


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_same_seed_runs_identical_at_two_threads(model: str, two_thread_runs: Path) -> None:
    assert_same_run(run_dir(two_thread_runs, model, 0, 2), run_dir(two_thread_runs, model, 1, 2))
