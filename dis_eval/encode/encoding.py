"""Encode once: run an encoder over a data set's rows in large batches, on the data's device,
up front (``encode_data``) or on demand (``LazyCodes``).

On dSprites every factor combination is exactly one image, so the code of a row never
changes: encoding each present row once and looking codes up by position gives the very
numbers a metric would get by re-encoding the images it draws (disentanglement_lib's way),
at a fraction of the cost.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from dis_eval.encode.codes import EncodedData
from dis_eval.encode.encoders import split_output
from dis_eval.errors import UserError


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
            mean_b, aux_b = split_output(out)
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
    codes = EncodedData(mean_np, aux_np, family if is_model else None, getattr(encoder, "d_max", None),
                        rows=None if positions is None else pos_all)
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
