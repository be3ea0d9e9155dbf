"""Encode once: run an encoder over a data set's rows in large batches, cache the codes, and
build the representations the metrics sample from by row.

On dSprites every factor combination is exactly one image, so the code of a row never
changes: encoding each present row once and looking codes up by position gives the very
numbers a metric would get by re-encoding the images it draws (disentanglement_lib's way),
at a fraction of the cost.

```python
codes = encode_data(encoder, data, batch_size=1024)     # EncodedData(mean, aux, family)
rep = representation(codes, kind="mean")                 # positions -> (len, D)
rep = representation(codes, kind="sample", seed=0)       # Echo / VAE sample, noise per call batch
```
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dis_eval.errors import UserError

REPRESENTATIONS = ("mean", "sample")


@dataclass
class EncodedData:
    """Cached encoder outputs for every present row of a data object (row = position).

    ``mean`` (n, D) float32: f(x) for Echo, the Gaussian mean for VAEs, the code of any other
    encoder. ``aux`` (n, D) or None: log s(x) (clip factor included) for Echo, the log-variance
    for VAEs. ``family``: "echo", "vae" or None (a plain code function). ``d_max``: Echo's
    term budget (the sample representation sums min(d_max, batch - 1) terms).
    """

    mean: np.ndarray
    aux: np.ndarray | None = None
    family: str | None = None
    d_max: int | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.mean = validate_codes(self.mean, None, "codes")
        if self.aux is not None:
            self.aux = validate_codes(self.aux, self.mean.shape[0], "aux codes")
            if self.aux.shape != self.mean.shape:
                raise UserError(f"aux codes have shape {self.aux.shape}, mean codes {self.mean.shape}: they must match")

    def __len__(self) -> int:
        return int(self.mean.shape[0])

    @property
    def num_latents(self) -> int:
        return int(self.mean.shape[1])


def validate_codes(codes: Any, num_rows: int | None, what: str = "codes") -> np.ndarray:
    """(n, D) finite float array, or a one-line UserError saying what is wrong."""
    arr = np.asarray(codes)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise UserError(f"{what} must be a 2-D array (rows, latents) with at least one latent, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise UserError(f"{what} must be real numbers, got dtype {arr.dtype}")
    if num_rows is not None and arr.shape[0] != num_rows:
        raise UserError(f"{what} have {arr.shape[0]} rows but the data set has {num_rows}; give one code per data row, in the data set's row order")
    arr = arr.astype(np.float32 if arr.dtype.itemsize <= 4 else np.float64, copy=False)
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise UserError(f"{what} contain {int(bad.sum())} NaN/infinite values (first at row {int(rows[0])}); metrics need finite codes")
    return arr


# --------------------------------------------------------------------------- encoders
def load_encoder(spec: str) -> Callable[[torch.Tensor], Any]:
    """An encoder from ``FILE`` (a TorchScript module) or ``path/to/module.py:function``."""
    if ":" in spec and spec.rsplit(":", 1)[0].endswith(".py"):
        path_s, fn_name = spec.rsplit(":", 1)
        path = Path(path_s)
        if not path.exists():
            raise UserError(f"encoder module {path} does not exist")
        mod_spec = importlib.util.spec_from_file_location(f"_dis_eval_user_encoder_{path.stem}", path)
        if mod_spec is None or mod_spec.loader is None:
            raise UserError(f"cannot import {path} as a Python module")
        module = importlib.util.module_from_spec(mod_spec)
        try:
            mod_spec.loader.exec_module(module)
        except Exception as exc:  # the user's code: report, don't crash
            raise UserError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
        fn = getattr(module, fn_name, None)
        if not callable(fn):
            raise UserError(f"{path} has no callable {fn_name!r}")
        return fn
    path = Path(spec)
    if not path.exists():
        raise UserError(f"encoder {spec} does not exist (give a TorchScript file or path/to/module.py:function)")
    try:
        return torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise UserError(f"{path} is not a TorchScript module ({type(exc).__name__}); "
                        "save one with torch.jit.save, or pass path/to/module.py:function") from exc


def _split_output(out: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    if isinstance(out, (tuple, list)):
        if len(out) == 0 or len(out) > 2:
            raise UserError(f"the encoder returned {len(out)} outputs; return codes (N, D) or (mean, aux)")
        return _as_tensor(out[0]), (_as_tensor(out[1]) if len(out) == 2 else None)
    return _as_tensor(out), None


def _as_tensor(x: Any) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    try:
        return torch.as_tensor(np.asarray(x))
    except Exception as exc:
        raise UserError(f"the encoder returned {type(x).__name__}, not a tensor or array") from exc


def _device_of(encoder: Any, data: Any, device: str | torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    if isinstance(encoder, torch.nn.Module):
        for p in encoder.parameters():
            return p.device
    return torch.device(getattr(data, "device", "cpu"))


def encode_data(encoder: Any, data: Any, batch_size: int = 1024,
                device: str | torch.device | None = None, compile: bool = False,
                channels_last: bool = True, positions: np.ndarray | None = None,
                progress: bool = False) -> EncodedData:
    """Encode every present row of ``data`` once (or only ``positions``; other rows get NaN
    and must not be asked for).

    ``encoder``: a model with ``.encode(x) -> (mean, aux)`` and ``.family`` (this project's
    models), a TorchScript module, or any callable mapping a float tensor (N, 1, 64, 64) in
    [0, 1] to (N, D) codes (or to (mean, aux)). Runs under ``torch.inference_mode`` in
    batches of ``batch_size``; channels-last memory format (faster convolutions on CPU and
    GPU); ``compile=True`` wraps the forward in ``torch.compile``. On CUDA the images are
    unpacked on the device, TF32 is enabled and codes stay on the device until one copy at
    the end.
    """
    if batch_size < 1:
        raise UserError(f"encode batch size must be >= 1, got {batch_size}")
    dev = _device_of(encoder, data, device)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    if str(getattr(data, "device", dev)) != str(dev) and hasattr(data, "to"):
        data = data.to(dev)
    family = getattr(encoder, "family", None)
    is_model = family in ("echo", "vae") and hasattr(encoder, "encode")
    if isinstance(encoder, torch.nn.Module) or isinstance(encoder, torch.jit.ScriptModule):
        encoder = encoder.to(dev).eval()
        if channels_last:
            encoder = encoder.to(memory_format=torch.channels_last)
    fwd: Callable[[torch.Tensor], Any] = encoder.encode if is_model else encoder
    if compile:
        fwd = torch.compile(fwd, dynamic=False)

    pos_all = np.arange(len(data), dtype=np.int64) if positions is None else np.unique(np.asarray(positions, dtype=np.int64))
    n_rows = len(data)
    mean_out: torch.Tensor | None = None
    aux_out: torch.Tensor | None = None
    has_aux: bool | None = None
    t0 = time.perf_counter()
    pos_t = torch.as_tensor(pos_all, device=dev)
    iterator = range(0, len(pos_all), batch_size)
    if progress:
        from tqdm import tqdm
        iterator = tqdm(iterator, desc="encode", unit="batch")
    with torch.inference_mode():
        for lo in iterator:
            p = pos_t[lo: lo + batch_size]
            x = data.images(p)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            try:
                out = fwd(x)
            except UserError:
                raise
            except Exception as exc:  # a user's encoder failing on our input
                raise UserError(f"the encoder failed on a batch of shape {tuple(x.shape)}: {type(exc).__name__}: {exc}") from exc
            mean_b, aux_b = _split_output(out)
            if mean_b.ndim == 1:
                mean_b = mean_b[:, None]
            if mean_b.ndim != 2 or mean_b.shape[0] != x.shape[0]:
                raise UserError(f"the encoder returned shape {tuple(mean_b.shape)} for {x.shape[0]} images; it must return (N, D)")
            if mean_out is None:
                d = mean_b.shape[1]
                mean_out = torch.full((n_rows, d), float("nan"), dtype=torch.float32, device=dev)
                has_aux = aux_b is not None
                if has_aux:
                    aux_out = torch.full((n_rows, d), float("nan"), dtype=torch.float32, device=dev)
            if mean_b.shape[1] != mean_out.shape[1]:
                raise UserError("the encoder returned a different number of latents for different batches")
            mean_out[p] = mean_b.to(device=dev, dtype=torch.float32)
            if has_aux and aux_out is not None and aux_b is not None:
                aux_out[p] = aux_b.to(device=dev, dtype=torch.float32)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - t0
    if mean_out is None:
        raise UserError("no rows to encode")
    mean_np = mean_out.cpu().numpy()
    aux_np = aux_out.cpu().numpy() if aux_out is not None else None
    if positions is not None:  # only the asked rows must be finite
        check = mean_np[pos_all]
        validate_codes(check, len(pos_all), "encoder output")
        if aux_np is not None:
            validate_codes(aux_np[pos_all], len(pos_all), "encoder aux output")
        codes = EncodedData.__new__(EncodedData)
        codes.mean, codes.aux, codes.family = mean_np, aux_np, (family if is_model else None)
        codes.d_max = getattr(encoder, "d_max", None)
        codes.info = {}
    else:
        codes = EncodedData(mean_np, aux_np, family if is_model else None, getattr(encoder, "d_max", None))
    codes.info.update({"encode_seconds": seconds, "rows_encoded": int(len(pos_all)),
                       "batch_size": int(batch_size), "device": str(dev), "compiled": bool(compile),
                       "channels_last": bool(channels_last),
                       "rows_per_second": float(len(pos_all) / seconds) if seconds > 0 else None})
    return codes


class LazyCodes:
    """Encode-once codes filled on demand: a row is encoded the first time a metric asks for it,
    together with every other missing row of that request, in batches of ``batch_size``.

    Metrics ask for their rows in large requests (a FactorVAE score asks for its variance sample,
    then for all its vote batches at once), so the suite still encodes in big batches, each row
    at most once - and a selection like ``--metrics mig`` encodes its 10,000 rows, not the
    whole set. Rows never asked for are never encoded.
    """

    def __init__(self, encoder: Any, data: Any, **encode_kwargs: Any) -> None:
        self.encoder, self.data, self.kw = encoder, data, encode_kwargs
        self.n = len(data)
        self.mean: np.ndarray | None = None
        self.aux: np.ndarray | None = None
        self.family: str | None = None
        self.d_max: int | None = None
        self.done = np.zeros(self.n, dtype=bool)
        self.info: dict[str, Any] = {"encode_seconds": 0.0, "rows_encoded": 0, "encode_calls": 0,
                                     "lazy": True}

    def __len__(self) -> int:
        return self.n

    def ensure(self, positions: np.ndarray) -> None:
        """Encode the rows of ``positions`` not encoded yet."""
        pos = np.asarray(positions, dtype=np.int64).ravel()
        missing = np.unique(pos[~self.done[pos]])
        if missing.size == 0:
            return
        enc = encode_data(self.encoder, self.data, positions=missing, **self.kw)
        if self.mean is None:
            self.mean = np.full((self.n, enc.mean.shape[1]), np.nan, dtype=np.float32)
            if enc.aux is not None:
                self.aux = np.full((self.n, enc.aux.shape[1]), np.nan, dtype=np.float32)
            self.family, self.d_max = enc.family, enc.d_max
        self.mean[missing] = enc.mean[missing]
        if self.aux is not None and enc.aux is not None:
            self.aux[missing] = enc.aux[missing]
        self.done[missing] = True
        for key in ("batch_size", "device", "compiled", "channels_last"):
            self.info[key] = enc.info[key]
        self.info["encode_seconds"] += enc.info["encode_seconds"]
        self.info["rows_encoded"] += int(missing.size)
        self.info["encode_calls"] += 1

    def ensure_some(self) -> None:
        """Encode one row if nothing is encoded yet (to learn the latents, family and aux)."""
        if self.mean is None and self.n:
            self.ensure(np.zeros(1, dtype=np.int64))


# --------------------------------------------------------------------------- representations
class MeanRepresentation:
    """positions -> cached codes (the deterministic mean / f(x)); independent of batching."""

    batch_invariant = True

    def __init__(self, codes: EncodedData | LazyCodes) -> None:
        self.source = codes
        self.lazy = isinstance(codes, LazyCodes)
        self.kind = "mean"

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        positions = np.asarray(positions, dtype=np.int64)
        if self.lazy:
            self.source.ensure(positions)
        return self.source.mean[positions]


def echo_noise_from_orders(f: np.ndarray, log_s: np.ndarray, orders: np.ndarray) -> np.ndarray:
    """Echo noise: f, log_s (B, D) or (nb, B, D); orders (.., B, T) other members' indices.

    eps_i = sum_k exp(sum_{m<k} log s_{l_m}) f_{l_k} (Brekelmans et al., 2019, Eq. 2), the
    products taken in log space as an exclusive cumulative sum.
    """
    squeeze = f.ndim == 2
    if squeeze:
        f, log_s, orders = f[None], log_s[None], orders[None]
    bidx = np.arange(f.shape[0])[:, None, None]
    f_sel = f[bidx, orders]  # (nb, B, T, D)
    ls_sel = log_s[bidx, orders]
    excl = np.cumsum(ls_sel, axis=2) - ls_sel
    eps = np.sum(np.exp(excl) * f_sel, axis=2)
    return eps[0] if squeeze else eps


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
        self.source = codes if isinstance(codes, LazyCodes) else None
        if self.source is not None:
            self.source.ensure_some()
        if codes.aux is None or codes.family not in ("echo", "vae"):
            raise UserError("the sample representation needs an Echo or VAE model's (mean, aux) codes; "
                            "these codes have no aux/family: use --representation mean")
        self.mean, self.aux, self.family = codes.mean, codes.aux, codes.family
        self.codes = codes
        self.d_max = int(d_max or codes.d_max or 64)
        self.rng = np.random.default_rng(seed)
        self.kind = "sample"

    def batched(self, positions: np.ndarray) -> np.ndarray:
        """(nb, B) positions -> (nb, B, D): each row of ``positions`` is one noise batch."""
        positions = np.asarray(positions, dtype=np.int64)
        if self.source is not None:
            self.source.ensure(positions)
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
            out[lo: lo + step] = fc + np.exp(ac) * echo_noise_from_orders(fc, ac, orders)
        return out

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        positions = np.asarray(positions, dtype=np.int64)
        return self.batched(positions[None])[0]


def representation(codes: EncodedData | LazyCodes, kind: str = "mean", seed: int = 0,
                   d_max: int | None = None) -> MeanRepresentation | SampleRepresentation:
    """The callable a metric samples from: ``positions -> (len, D)`` codes."""
    if kind == "mean":
        return MeanRepresentation(codes)
    if kind == "sample":
        return SampleRepresentation(codes, seed, d_max)
    raise UserError(f"unknown representation {kind!r}; choose one of {REPRESENTATIONS}")
