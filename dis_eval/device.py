"""Device names: ``auto`` (a GPU when there is one, else the CPU), ``cpu``, ``cuda``, ``cuda:N``."""

from __future__ import annotations

from typing import Any

from dis_eval.errors import UserError

DEVICE_HELP = "auto (a GPU when there is one), cpu, cuda or cuda:N"


def check_device_name(name: str) -> str:
    """``name`` when it is a device name this project accepts, else a one-line UserError."""
    if not (name in ("auto", "cpu", "cuda") or (name.startswith("cuda:") and name[5:].isdigit())):
        raise UserError(f"device must be {DEVICE_HELP}; got {name!r}")
    return name


def resolve_device(name: str) -> Any:
    """The ``torch.device`` for ``name``; CUDA asked for where there is none is an error."""
    import torch

    check_device_name(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name} asked for, but CUDA is not available here; use cpu or auto")
    return dev
