"""Echo noise: clip factor, exact rate, Lemma 2.1, App. C dependence, truncation, gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import ks_2samp

from dis_eval.models import (
    EchoAutoencoder,
    ModelSpec,
    build_model,
    build_objective,
    clip_factor,
    echo_noise,
)
from dis_eval.models.clip import FLOAT32_PRECISION, echo_terms, truncation_bound
from dis_eval.models.echo import echo_rate_per_example, echo_sample, other_member_orders


@pytest.mark.parametrize(("d", "r"), [(64, 0.7622), (63, 0.7591), (99, 0.8359), (100, 0.8373)])
def test_clip_factor_matches_the_papers_values(d: int, r: float) -> None:
    got = clip_factor(d)
    assert got == pytest.approx(r, abs=5e-5)
    # It solves M r^d / (1 - r) = 2^-23 (not the fallback (2^-23)^(1/d) = 0.7795 for d = 64).
    assert got**d / (1 - got) == pytest.approx(FLOAT32_PRECISION, rel=1e-9)


def test_clip_factor_is_not_the_authors_fallback_formula() -> None:
    assert clip_factor(64) < (2.0**-23) ** (1 / 64) - 0.01


def test_clip_factor_grows_with_terms_and_bound_and_rejects_bad_input() -> None:
    assert clip_factor(10) < clip_factor(64) < clip_factor(200)
    assert clip_factor(64, f_bound=10.0) < clip_factor(64)
    with pytest.raises(ValueError):
        clip_factor(0)


def test_truncation_error_below_float_precision_at_computed_clip() -> None:
    d = 64
    r = clip_factor(d)
    # Worst case of the remainder: every scale at r, every f at M = 1; float64 arithmetic.
    batch = d + 1
    f = torch.ones(batch, 1, dtype=torch.float64)
    log_s = torch.full((batch, 1), math.log(r), dtype=torch.float64)
    eps = echo_noise(f, log_s, d, torch.Generator().manual_seed(0))
    infinite = 1.0 / (1.0 - r)
    err = infinite - eps
    assert torch.all(err > 0)
    assert torch.all(err <= FLOAT32_PRECISION * (1 + 1e-6))
    assert truncation_bound(r, d) == pytest.approx(FLOAT32_PRECISION, rel=1e-9)
    # The fallback clip (ignoring 1/(1-r)) truncates above float precision.
    r_bad = (2.0**-23) ** (1 / d)
    assert truncation_bound(r_bad, d) > 4 * FLOAT32_PRECISION


def test_orders_exclude_self_without_replacement_and_are_fresh_each_call() -> None:
    g = torch.Generator().manual_seed(1)
    b, t = 9, 8
    o1 = other_member_orders(b, t, g, torch.device("cpu"))
    o2 = other_member_orders(b, t, g, torch.device("cpu"))
    assert o1.shape == (b, t)
    for i in range(b):
        assert sorted(o1[i].tolist()) == [j for j in range(b) if j != i]
    assert not torch.equal(o1, o2)
    # First echo position is uniform over the other members.
    firsts = torch.cat([other_member_orders(5, 4, g, torch.device("cpu"))[0, :1] for _ in range(4000)])
    counts = torch.bincount(firsts, minlength=5).float() / 4000
    assert counts[0] == 0
    assert torch.allclose(counts[1:], torch.full((4,), 0.25), atol=0.03)


def test_echo_noise_matches_an_explicit_loop() -> None:
    g = torch.Generator().manual_seed(3)
    f = torch.randn(6, 3, dtype=torch.float64).tanh()
    log_s = torch.log(torch.rand(6, 3, dtype=torch.float64) * 0.7 + 0.05)
    state = g.get_state()
    eps = echo_noise(f, log_s, 4, g)
    g.set_state(state)
    order = other_member_orders(6, 4, g, torch.device("cpu"))
    expected = torch.zeros_like(f)
    for i in range(6):
        scale = torch.ones(3, dtype=torch.float64)
        for k in range(4):
            j = order[i, k]
            expected[i] += scale * f[j]
            scale = scale * log_s[j].exp()
    assert torch.allclose(eps, expected, rtol=1e-12, atol=1e-12)


def test_lemma_2_1_noise_has_the_output_distribution() -> None:
    """eps and z = f + s eps have the same distribution (moments, quantiles, closed-form mean)."""
    g = torch.Generator().manual_seed(0)
    b = 2000
    x = torch.randn(b, 2, generator=g, dtype=torch.float64)
    f = torch.tanh(torch.stack([x[:, 0], 0.5 * x[:, 0] + x[:, 1] ** 2 - 1], 1))
    s = 0.2 + 0.3 * torch.sigmoid(x[:, :1]).expand(b, 2)  # depends on x, <= 0.5
    log_s = s.log()
    eps = echo_noise(f, log_s, 60, g)  # 0.5^60: truncation negligible
    z = f + s * eps
    for j in range(2):
        assert eps[:, j].mean().item() == pytest.approx(z[:, j].mean().item(), abs=0.05)
        assert eps[:, j].std().item() == pytest.approx(z[:, j].std().item(), rel=0.07)
        assert ks_2samp(eps[:, j].numpy(), z[:, j].numpy()).pvalue > 1e-3
    # E[eps] = E[f] / (1 - E[s]) when s and f are independent across the echo terms' own draws:
    # E[z] = E[f] + E[s eps] and eps is independent of its own x (it is built from others).
    g2 = torch.Generator().manual_seed(5)
    f2 = torch.rand(b, 1, generator=g2, dtype=torch.float64)
    log_s2 = torch.full((b, 1), math.log(0.4), dtype=torch.float64)
    eps2 = echo_noise(f2, log_s2, 60, g2)
    assert eps2.mean().item() == pytest.approx(f2.mean().item() / 0.6, rel=0.02)


def _second_order_tc(a: np.ndarray) -> float:
    cov = np.cov(a, rowvar=False)
    return 0.5 * (np.sum(np.log(np.diag(cov))) - np.linalg.slogdet(cov)[1])


def test_app_c_noise_is_dependent_when_f_is_correlated() -> None:
    g = torch.Generator().manual_seed(2)
    b = 1500
    u = torch.randn(b, 1, generator=g, dtype=torch.float64)
    f_corr = torch.tanh(torch.cat([u, u + 0.3 * torch.randn(b, 1, generator=g, dtype=torch.float64)], 1))
    f_ind = torch.tanh(torch.randn(b, 2, generator=g, dtype=torch.float64))
    log_s = torch.full((b, 2), math.log(0.5), dtype=torch.float64)
    tc_corr = _second_order_tc(echo_noise(f_corr, log_s, 50, g).numpy())
    tc_ind = _second_order_tc(echo_noise(f_ind, log_s, 50, g).numpy())
    assert tc_corr > 0.5
    assert tc_ind < 0.02


def test_gradients_flow_through_the_noise() -> None:
    f = torch.randn(5, 2, dtype=torch.float64).tanh().requires_grad_()
    log_s = torch.full((5, 2), math.log(0.5), dtype=torch.float64, requires_grad=True)
    z = echo_sample(f, log_s, 4, torch.Generator().manual_seed(0))
    z[0].sum().backward()
    assert torch.all(f.grad[1:] != 0)  # other members' f enter example 0's noise
    # Every other member's scale enters except the last one in example 0's echo order.
    assert int((log_s.grad[1:].abs().sum(1) > 0).sum()) == 3


def test_too_many_terms_for_the_batch_is_an_error() -> None:
    with pytest.raises(ValueError):
        echo_noise(torch.zeros(4, 2), torch.zeros(4, 2), 4)
    assert echo_terms(64, 64) == 63
    assert echo_terms(10, 64) == 10


def _model() -> EchoAutoencoder:
    torch.manual_seed(0)
    return EchoAutoencoder(num_latents=10, d_max=64)


def test_encode_contract_and_clip() -> None:
    m = _model()
    assert m.family == "echo"
    x = (torch.rand(8, 1, 64, 64) > 0.8).float()
    f, log_s = m.encode(x)
    assert f.shape == log_s.shape == (8, 10)
    assert torch.all(f.abs() < 1)
    assert torch.all(log_s < math.log(clip_factor(64)) + 1e-6)
    assert m.decode(f).shape == (8, 1, 64, 64)
    assert m.log_clip.item() == pytest.approx(math.log(0.7622), abs=1e-4)


def test_rate_is_the_formula_and_depends_only_on_s() -> None:
    m = _model()
    x = (torch.rand(16, 1, 64, 64) > 0.8).float()
    f, log_s = m.encode(x)
    per_dim = m.rate_per_dim(f, log_s)
    assert torch.allclose(per_dim, -log_s.mean(0))
    assert per_dim.sum().item() == pytest.approx(echo_rate_per_example(log_s).mean().item(), rel=1e-6)
    # Lower limit: each dimension costs at least -log r.
    assert torch.all(per_dim >= -math.log(clip_factor(64)) - 1e-6)
    # Changing the f head changes f but not the rate; changing the s head changes the rate.
    with torch.no_grad():
        m.encoder.head_a.weight.add_(1.0)
    f2, log_s2 = m.encode(x)
    assert not torch.allclose(f, f2)
    assert torch.equal(m.rate_per_dim(f2, log_s2), per_dim)
    with torch.no_grad():
        m.encoder.head_b.bias.add_(1.0)
    assert not torch.allclose(m.rate_per_dim(*m.encode(x)), per_dim)


def test_echo_objective_is_reconstruction_plus_beta_rate() -> None:
    spec = ModelSpec("echo", latents=10, d_max=64, beta=2.5)
    torch.manual_seed(0)
    model, disc = build_model(spec)
    obj = build_objective(spec, model, disc)
    x = (torch.rand(16, 1, 64, 64) > 0.8).float()
    out = obj(x, torch.Generator().manual_seed(0))
    loss, recon, rate = out.terms.tolist()
    assert obj.term_names == ("loss", "reconstruction", "rate")
    assert loss == pytest.approx(recon + 2.5 * rate, rel=1e-6)
    f, log_s = model.encode(x)
    assert rate == pytest.approx((-log_s.sum(1)).mean().item(), rel=1e-6)
    # Reconstruction: Bernoulli cross-entropy summed over 4,096 pixels, mean over the batch.
    assert 0.5 * 4096 < recon < 1.0 * 4096
