"""Encode once: cached codes equal per-image encoding; representations; bad encoders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dis_eval.data import DataSpec, load_data
from dis_eval.encode import (
    EncodedData,
    SampleRepresentation,
    encode_data,
    load_encoder,
    representation,
)
from dis_eval.errors import UserError
from dis_eval.models.echo import echo_noise_from_orders

FIXTURE = Path(__file__).parent / "data" / "dsprites_real_fixture.npz"


@pytest.fixture(scope="module")
def data():
    return load_data(DataSpec(str(FIXTURE)))


class TinyEncoder(torch.nn.Module):
    """Deterministic conv encoder: (N,1,64,64) -> (mean, aux) like this project's models."""

    family = "echo"
    d_max = 64

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(1, 4, 4, stride=4)
        self.lin = torch.nn.Linear(4 * 16 * 16, 6)

    def encode(self, x):
        h = self.lin(torch.relu(self.conv(x)).flatten(1))
        return torch.tanh(h[:, :3] / 16), torch.nn.functional.logsigmoid(h[:, 3:]) + np.log(0.7622)


def test_cached_codes_equal_direct_encoding(data):
    model = TinyEncoder().eval()
    codes = encode_data(model, data, batch_size=256)
    assert codes.mean.shape == (len(data), 3) and codes.aux.shape == (len(data), 3)
    assert codes.family == "echo" and codes.d_max == 64
    pos = np.array([0, 17, 999, len(data) - 1])
    with torch.inference_mode():
        m, a = model.encode(data.images(pos))
    np.testing.assert_allclose(codes.mean[pos], m.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(codes.aux[pos], a.numpy(), rtol=1e-5, atol=1e-6)
    other = encode_data(model, data, batch_size=1000, channels_last=False)
    np.testing.assert_allclose(codes.mean, other.mean, rtol=1e-5, atol=1e-6)
    assert codes.info["rows_encoded"] == len(data)


def test_plain_function_and_torchscript(data, tmp_path):
    def fn(x):
        return x.mean(dim=(2, 3)).repeat(1, 2) + torch.arange(2.0)

    codes = encode_data(fn, data, batch_size=512)
    assert codes.family is None and codes.aux is None and codes.mean.shape == (len(data), 2)

    class M(torch.nn.Module):
        def forward(self, x):
            return x.flatten(1)[:, :5] * 2.0

    path = tmp_path / "enc.pt"
    torch.jit.save(torch.jit.script(M()), str(path))
    ts = load_encoder(str(path))
    codes = encode_data(ts, data, batch_size=700)
    np.testing.assert_array_equal(codes.mean[:3], data.images(np.arange(3)).flatten(1)[:, :5].numpy() * 2)
    mod = tmp_path / "user_enc.py"
    mod.write_text("import torch\ndef encode(x):\n    return x.sum(dim=(1, 2, 3))[:, None] / 4096.0\n")
    codes = encode_data(load_encoder(f"{mod}:encode"), data)
    assert codes.mean.shape == (len(data), 1) and np.all(codes.mean > 0)


def test_bad_encoders(data, tmp_path):
    with pytest.raises(UserError, match="NaN"):
        encode_data(lambda x: torch.full((x.shape[0], 2), float("nan")), data)
    with pytest.raises(UserError, match="shape"):
        encode_data(lambda x: torch.zeros(3, 2), data)
    with pytest.raises(UserError, match="failed"):
        encode_data(lambda x: x.view(-1, 7), data)
    with pytest.raises(UserError, match="does not exist"):
        load_encoder(str(tmp_path / "missing.pt"))
    bad = tmp_path / "x.pt"
    bad.write_text("not torchscript")
    with pytest.raises(UserError, match="TorchScript"):
        load_encoder(str(bad))
    with pytest.raises(UserError, match="no callable"):
        (tmp_path / "m.py").write_text("x = 1\n")
        load_encoder(f"{tmp_path / 'm.py'}:nope")


def test_mean_representation_is_lookup():
    c = EncodedData(np.arange(12, dtype=np.float32).reshape(6, 2))
    rep = representation(c)
    assert rep.batch_invariant
    np.testing.assert_array_equal(rep(np.array([5, 0])), [[10, 11], [0, 1]])
    with pytest.raises(UserError, match="sample"):
        representation(c, "sample")
    with pytest.raises(UserError, match="unknown representation"):
        representation(c, "median")


def test_echo_noise_formula_explicit():
    rs = np.random.RandomState(0)
    f, ls = rs.uniform(-1, 1, (5, 3)), np.log(rs.uniform(0.2, 0.7, (5, 3)))
    orders = np.array([[p for p in rs.permutation(5) if p != i][:3] for i in range(5)])
    eps = echo_noise_from_orders(torch.from_numpy(f), torch.from_numpy(ls), torch.from_numpy(orders)).numpy()
    for i in range(5):
        l1, l2, l3 = orders[i]
        want = f[l1] + np.exp(ls[l1]) * f[l2] + np.exp(ls[l1] + ls[l2]) * f[l3]
        np.testing.assert_allclose(eps[i], want, rtol=1e-12)


def test_echo_sample_uses_other_batch_members_only():
    n, d = 64, 4
    rs = np.random.RandomState(1)
    mean = rs.uniform(-1, 1, (n, d)).astype(np.float32)
    aux = np.full((n, d), np.log(0.5), dtype=np.float32)
    rep = SampleRepresentation(EncodedData(mean, aux, "echo", 64), seed=0)
    z = rep(np.arange(n))
    assert z.shape == (n, d) and not rep.batch_invariant
    # one member only: no other members, no noise
    np.testing.assert_allclose(rep(np.array([3])), mean[[3]], rtol=1e-6)
    # a batch of two: eps is exactly the other member's f (one term)
    z2 = rep(np.array([0, 1]))
    np.testing.assert_allclose(z2[0], mean[0] + 0.5 * mean[1], rtol=1e-5)
    # fresh noise per call, reproducible per seed
    assert not np.allclose(rep(np.arange(n)), z)
    again = SampleRepresentation(EncodedData(mean, aux, "echo", 64), seed=0)
    np.testing.assert_array_equal(again(np.arange(n)), z)
    # batched() treats each row of positions as its own batch
    b = again.batched(np.arange(n).reshape(2, 32))
    assert b.shape == (2, 32, d)


def test_echo_sample_matches_model_channel_in_distribution():
    """Lemma 2.1 style check against the models' Echo channel: same moments of z."""
    from dis_eval.models.echo import echo_sample

    rs = np.random.RandomState(2)
    f = np.tanh(rs.randn(64, 2)).astype(np.float32)
    ls = np.log(0.7622 * 1 / (1 + np.exp(-rs.randn(64, 2)))).astype(np.float32)
    rep = SampleRepresentation(EncodedData(f, ls, "echo", 64), seed=0)
    ours = np.stack([rep(np.arange(64)) for _ in range(200)])
    g = torch.Generator().manual_seed(0)
    theirs = np.stack([echo_sample(torch.from_numpy(f), torch.from_numpy(ls), 63, g).numpy() for _ in range(200)])
    # per-example means within ~5 standard errors; pooled moments per latent tightly
    se = np.sqrt(ours.var(axis=0) / 200 + theirs.var(axis=0) / 200)
    assert np.all(np.abs(ours.mean(axis=0) - theirs.mean(axis=0)) < 5 * se + 1e-6)
    np.testing.assert_allclose(ours.std(axis=(0, 1)), theirs.std(axis=(0, 1)), rtol=0.05)


def test_vae_sample_statistics():
    mean = np.zeros((20000, 2), dtype=np.float32)
    logvar = np.tile(np.log([0.25, 4.0]), (20000, 1)).astype(np.float32)
    z = representation(EncodedData(mean, logvar, "vae"), "sample", seed=0)(np.arange(20000))
    np.testing.assert_allclose(z.std(axis=0), [0.5, 2.0], rtol=0.03)


def test_codes_validation():
    with pytest.raises(UserError, match="NaN"):
        EncodedData(np.array([[0.0, np.inf]]))
    with pytest.raises(UserError, match="shape"):
        EncodedData(np.zeros((4, 2)), np.zeros((4, 3)), "vae")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_encoding_matches_cpu(data):
    model = TinyEncoder().eval()
    cpu = encode_data(model, data, batch_size=512, device="cpu")
    gpu = encode_data(TinyEncoder().eval(), data.to("cuda"), batch_size=512, device="cuda")
    np.testing.assert_allclose(cpu.mean, gpu.mean, rtol=1e-3, atol=1e-4)
