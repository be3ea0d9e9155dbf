"""Architecture, Gaussian VAE KL, FactorVAE discriminator and permutation, TC objective wiring."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.distributions import Normal, kl_divergence

from dis_eval.errors import UserError
from dis_eval.models import (
    MODELS,
    Discriminator,
    GaussianVAE,
    ModelSpec,
    build_model,
    build_objective,
    gaussian_kl_per_dim,
    gaussian_sample,
    permute_dims,
    tc_estimate,
)
from dis_eval.models.architecture import ConvEncoder, DeconvDecoder
from dis_eval.models.discriminator import discriminator_accuracy, discriminator_loss


def test_encoder_is_dlib_conv_encoder() -> None:
    enc = ConvEncoder(10)
    convs = [m for m in enc.modules() if isinstance(m, nn.Conv2d)]
    # disentanglement_lib architectures.conv_encoder: kernels 4, 4, 2, 2; filters 32, 32, 64, 64.
    assert [c.kernel_size for c in convs] == [(4, 4), (4, 4), (2, 2), (2, 2)]
    assert [c.out_channels for c in convs] == [32, 32, 64, 64]
    assert all(c.stride == (2, 2) for c in convs)
    a, b = enc(torch.zeros(3, 1, 64, 64))
    assert a.shape == b.shape == (3, 10)
    assert sum(p.numel() for p in enc.parameters()) == 544 + 16416 + 8256 + 16448 + 262400 + 2 * 2570


def test_decoder_is_dlib_deconv_decoder() -> None:
    dec = DeconvDecoder(10)
    deconvs = [m for m in dec.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [c.kernel_size for c in deconvs] == [(4, 4)] * 4
    assert [c.out_channels for c in deconvs] == [64, 32, 32, 1]
    assert dec(torch.zeros(3, 10)).shape == (3, 1, 64, 64)


def test_gaussian_kl_matches_closed_form() -> None:
    mean = torch.randn(50, 10, dtype=torch.float64)
    logvar = torch.randn(50, 10, dtype=torch.float64)
    ref = kl_divergence(Normal(mean, (0.5 * logvar).exp()), Normal(0.0, 1.0))
    assert torch.allclose(gaussian_kl_per_dim(mean, logvar), ref, rtol=1e-10, atol=1e-12)
    assert gaussian_kl_per_dim(torch.zeros(1, 1), torch.zeros(1, 1)).item() == 0.0


def test_vae_rate_and_sampling() -> None:
    torch.manual_seed(0)
    m = GaussianVAE(10)
    assert m.family == "vae"
    x = (torch.rand(8, 1, 64, 64) > 0.8).float()
    mean, logvar = m.encode(x)
    assert torch.allclose(m.rate_per_dim(mean, logvar), gaussian_kl_per_dim(mean, logvar).mean(0))
    mu = torch.full((20000, 1), 2.0)
    lv = torch.full((20000, 1), math.log(0.25))
    z = gaussian_sample(mu, lv, torch.Generator().manual_seed(0))
    assert z.mean().item() == pytest.approx(2.0, abs=0.02)
    assert z.std().item() == pytest.approx(0.5, abs=0.02)


def test_discriminator_architecture() -> None:
    d = Discriminator(10)
    lin = [m for m in d.modules() if isinstance(m, nn.Linear)]
    assert [m.out_features for m in lin] == [1000] * 6 + [2]
    acts = [m for m in d.modules() if isinstance(m, nn.LeakyReLU)]
    assert len(acts) == 6 and all(a.negative_slope == 0.2 for a in acts)


def test_permute_dims_shuffles_each_dimension_across_the_batch() -> None:
    z = torch.arange(40.0).view(8, 5) + 100 * torch.arange(5.0)
    zp = permute_dims(z, torch.Generator().manual_seed(0))
    # Every column keeps its own values (a permutation across the batch, not across dimensions).
    assert torch.equal(zp.sort(0).values, z.sort(0).values)
    assert not torch.equal(zp, z)
    # Columns are permuted independently.
    order = [(zp[:, j] - 100 * j).long().tolist() for j in range(5)]
    assert len({tuple(o) for o in order}) > 1


def _fit_tc(correlated: bool, seed: int) -> float:
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    disc = Discriminator(4, hidden=128, layers=3)
    opt = torch.optim.Adam(disc.parameters(), lr=1e-3, betas=(0.5, 0.9))
    cov = torch.eye(4)
    if correlated:  # pairs with correlation 0.9: true TC = 2 * -0.5 log(1 - 0.81) = 1.66 nats
        cov[0, 1] = cov[1, 0] = cov[2, 3] = cov[3, 2] = 0.9
    chol = torch.linalg.cholesky(cov)

    def draw(n: int) -> torch.Tensor:
        return torch.randn(n, 4, generator=g) @ chol.T

    for _ in range(300):
        z = draw(256)
        real, perm = disc(z), disc(permute_dims(z, g))
        loss = discriminator_loss(real, perm)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return tc_estimate(disc(draw(4000))).item()


def test_tc_estimate_near_zero_for_independent_and_positive_for_correlated_codes() -> None:
    tc_ind = _fit_tc(False, 0)
    tc_cor = _fit_tc(True, 0)
    assert abs(tc_ind) < 0.15
    assert 0.8 < tc_cor < 2.5


def test_discriminator_loss_and_accuracy() -> None:
    real = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    perm = torch.tensor([[0.0, 2.0], [0.0, 2.0]])
    assert discriminator_accuracy(real, perm).item() == 0.75
    ref = 0.5 * (nn.functional.cross_entropy(real, torch.zeros(2, dtype=torch.long))
                 + nn.functional.cross_entropy(perm, torch.ones(2, dtype=torch.long)))
    assert discriminator_loss(real, perm).item() == pytest.approx(ref.item(), rel=1e-6)


@pytest.mark.parametrize("name", ["factor_vae", "echo_tc", "vae_tc"])
def test_tc_objective_sends_each_loss_to_its_own_parameters(name: str) -> None:
    spec = ModelSpec(name, latents=10, d_max=16 if MODELS[name].family == "echo" else None, beta=1.0,
                     tc_weight=7.0)
    torch.manual_seed(0)
    model, disc = build_model(spec)
    obj = build_objective(spec, model, disc)
    x = (torch.rand(16, 1, 64, 64) > 0.8).float()
    out = obj(x, torch.Generator().manual_seed(0))
    loss, recon, rate, tc, dloss, dacc = out.terms.tolist()
    assert loss == pytest.approx(recon + rate + 7.0 * tc, rel=1e-5)
    assert 0 <= dacc <= 1 and dloss > 0
    obj.backward(out)
    # Model gradients must equal those of the model loss alone (none from the discriminator loss).
    g_model = [p.grad.clone() for p in model.parameters()]
    g_disc = [p.grad.clone() for p in disc.parameters()]
    for p in list(model.parameters()) + list(disc.parameters()):
        p.grad = None
    out2 = obj(x, torch.Generator().manual_seed(0))
    ref_model = torch.autograd.grad(out2.loss, list(model.parameters()), retain_graph=True)
    ref_disc = torch.autograd.grad(out2.disc_loss, list(disc.parameters()))
    assert all(torch.allclose(a, b, rtol=1e-5, atol=1e-7) for a, b in zip(g_model, ref_model, strict=True))
    assert all(torch.allclose(a, b, rtol=1e-5, atol=1e-7) for a, b in zip(g_disc, ref_disc, strict=True))


def test_every_model_name_builds() -> None:
    for name, (family, uses_tc) in MODELS.items():
        model, disc = build_model(ModelSpec(name, latents=5, d_max=8 if family == "echo" else None))
        assert model.family == family
        assert (disc is not None) == uses_tc
    with pytest.raises(UserError, match="unknown model 'nope'"):
        ModelSpec("nope")
