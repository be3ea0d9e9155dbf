"""Encode once for many models: M trained models of one architecture stacked into a pack
(``dis_eval.models.ensemble``) encode each batch of images in one grouped forward pass, so
scoring M models reads and unpacks the data set once instead of M times (docs/packs.md,
"Scoring a pack").
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from dis_eval.encode.codes import EncodedData
from dis_eval.errors import UserError


def stack_models(models: Sequence[torch.nn.Module], specs: Sequence[Any]) -> torch.nn.Module:
    """Trained models of one family and architecture (their ``ModelSpec``s equal up to the loss
    weights) as one ``PackModel``."""
    from dis_eval.models.ensemble import PackModel, stack_modules

    arch = {(s.family, s.latents, s.d_max, s.echo_precision) for s in specs}
    if len(arch) != 1:
        raise UserError("models encoded together must share one family and architecture "
                        "(latents, Echo d_max and precision)")
    pack = PackModel(specs[0], len(models))
    stack_modules(pack, models)
    return pack.eval()


def encode_pack(pack: torch.nn.Module, data: Any, batch_size: int = 1024,
                device: str | torch.device | None = None) -> list[EncodedData]:
    """Every present row of ``data`` encoded by every member of ``pack``: one ``EncodedData``
    per member, as ``encode_data`` would give for that model alone (up to fp32 summation
    order). The images of a batch are unpacked once and shared by all members."""
    if batch_size < 1:
        raise UserError(f"encode batch size must be >= 1, got {batch_size}")
    dev = torch.device(device) if device is not None else next(pack.parameters()).device
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if str(getattr(data, "device", dev)) != str(dev):
        data = data.to(dev)
    pack = pack.to(dev).eval()
    pack.memory_format = torch.channels_last
    n, m, d = len(data), pack.members, pack.num_latents
    mean = torch.empty((m, n, d), dtype=torch.float32, device=dev)
    aux = torch.empty((m, n, d), dtype=torch.float32, device=dev)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for lo in range(0, n, batch_size):
            pos = torch.arange(lo, min(lo + batch_size, n), device=dev)
            mb, ab = pack.encode_shared(data.images(pos))
            mean[:, lo:lo + len(pos)] = mb.float()
            aux[:, lo:lo + len(pos)] = ab.float()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - t0
    mean_np, aux_np = mean.cpu().numpy(), aux.cpu().numpy()
    out = []
    for i in range(m):
        codes = EncodedData(np.ascontiguousarray(mean_np[i]), np.ascontiguousarray(aux_np[i]), pack.family,
                            getattr(pack, "d_max", None))
        codes.info.update({"encode_seconds": seconds / m, "rows_encoded": int(n), "batch_size": int(batch_size),
                           "device": str(dev), "compiled": False, "channels_last": True,
                           "pack_encoded": {"members": int(m), "seconds_all_members": seconds}})
        out.append(codes)
    return out
