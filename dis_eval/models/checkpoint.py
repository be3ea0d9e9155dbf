"""Checkpoint (de)serialisation: atomic writes, RNG states, and loading a trained model.

Everything saved here loads with ``torch.load(..., weights_only=True)``: tensors, plain
containers, numbers and strings only (numpy's RNG state is stored as a tensor).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dis_eval.atomic import atomic_open
from dis_eval.errors import UserError


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """torch.save to a temporary file in the same folder, fsync, then os.replace (atomic)."""
    with atomic_open(path, "wb") as fh:
        torch.save(obj, fh)


def global_rng_state() -> dict[str, Any]:
    """Process-wide generators (torch CPU/CUDA, numpy, Python) as weights_only-safe values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": _to_lists(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["torch_cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_global_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    npst = state["numpy"]
    np.random.set_state((npst["kind"], npst["keys"].numpy().astype(np.uint32), npst["pos"],
                         npst["has_gauss"], npst["cached"]))
    random.setstate(_to_tuples(state["python"]))
    if "torch_cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["torch_cuda"])


def _to_lists(x: Any) -> Any:
    return [_to_lists(v) for v in x] if isinstance(x, tuple | list) else x


def _to_tuples(x: Any) -> Any:
    return tuple(_to_tuples(v) for v in x) if isinstance(x, list) else x


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """A checkpoint or model file, loaded with ``weights_only=True`` (nothing in it can run)."""
    try:
        blob = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError as exc:
        raise UserError(f"no checkpoint at {path}") from exc
    except Exception as exc:  # noqa: BLE001 - truncated zip, foreign pickle, random bytes
        why = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path} is not a readable dis-eval checkpoint ({why}); it may be truncated or "
                        "damaged: train again, or resume from an intact copy") from None
    if not isinstance(blob, dict):
        raise UserError(f"{path} holds {type(blob).__name__}, not a dis-eval checkpoint")
    return blob


# Keys of a run's config that may differ between its files without making them another run's.
RUN_LOCAL_KEYS = frozenset({"device", "device_used"})


def check_same_run(saved: dict[str, Any], expected: dict[str, Any], path: str | os.PathLike,
                   config_path: str | os.PathLike) -> None:
    """A one-line UserError when the config saved in the model/checkpoint file at ``path``
    is not the run's (``config_path``): a file copied from another run or model."""
    if not isinstance(saved, dict):
        raise UserError(f"{path} holds no training config; it is not a dis-eval model or checkpoint")
    keys = sorted((set(saved) | set(expected)) - RUN_LOCAL_KEYS, key=str)
    differ = [k for k in keys if saved.get(k) != expected.get(k)]
    if differ:
        shown = ", ".join(f"{k}={saved.get(k)!r} (run: {expected.get(k)!r})" for k in differ[:3])
        raise UserError(f"{path} belongs to another run or model than {config_path} ({shown}); "
                        "put the run's own file back, or train again")


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """Load a trained model from a model or checkpoint file (a run folder: ``RunDir.load_model``).

    Returns ``(model in eval mode on device, resolved training config dict)``.
    """
    from dis_eval.models.build import build_model
    from dis_eval.models.spec import ModelSpec

    path = Path(path)
    if not path.is_file():
        raise UserError(f"no model file at {path} (give a model.pt or checkpoint.pt written by dis-eval train)")
    blob = load_checkpoint(path, map_location="cpu")
    if "config" not in blob or not ("state_dict" in blob or "model" in blob):
        raise UserError(f"{path} is not a dis-eval model or checkpoint (no config and weights in it)")
    config = blob["config"]
    state = blob["state_dict"] if "state_dict" in blob else blob["model"]
    model, _ = build_model(ModelSpec.from_config(config))
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise UserError(f"{path}: the weights do not fit the model its config describes "
                        f"({str(exc).splitlines()[0]})") from None
    model.to(device).eval()
    return model, config
