"""Encoders from files: an ONNX model (``.onnx``, onnxruntime's CPU provider), a ``torch.export``
program (``.pt2``), a TorchScript module or ``path/to/module.py:function`` (run only when the
user names it on the command line), and the normalisation of what an encoder returns."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dis_eval.errors import UserError

ONNX_SUFFIX = ".onnx"
EXPORT_SUFFIX = ".pt2"


class OnnxEncoder:
    """An ONNX model ``[N, 1, 64, 64] -> [N, D]`` run by onnxruntime's CPU provider. Built from
    the model's bytes, so nothing is read from beside the file (external tensor data fails)."""

    def __init__(self, model_bytes: bytes, what: str = "ONNX model", threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(model_bytes, sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - any model onnxruntime refuses is one line
            raise UserError(f"{what} cannot be loaded by onnxruntime: {str(exc).splitlines()[0][:200]}") from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise UserError(f"{what} has {len(inputs)} inputs; it must take one [N, 1, 64, 64] float tensor")
        self.input_name = inputs[0].name

    def __call__(self, x: torch.Tensor) -> np.ndarray:
        return self.session.run(None, {self.input_name: x.detach().cpu().contiguous().numpy().astype(np.float32)})[0]


class ExportedEncoder:
    """A ``torch.export`` program's module as a plain callable (its module refuses ``.eval()``
    and ``.to()``: an exported program is already fixed for inference on its device)."""

    def __init__(self, module: Callable[[torch.Tensor], Any]) -> None:
        self.module = module

    def __call__(self, x: torch.Tensor) -> Any:
        return self.module(x)


def load_encoder(spec: str) -> Callable[[torch.Tensor], Any]:
    """An encoder from ``FILE`` (``.onnx``, a ``torch.export`` ``.pt2`` program, or a TorchScript
    module) or ``path/to/module.py:function``."""
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
        raise UserError(f"encoder {spec} does not exist (give an .onnx, a torch.export .pt2, a TorchScript file "
                        "or path/to/module.py:function)")
    if path.suffix.lower() == ONNX_SUFFIX:
        return OnnxEncoder(path.read_bytes(), f"ONNX encoder {path}")
    if path.suffix.lower() == EXPORT_SUFFIX:
        try:
            program = torch.export.load(str(path))
        except Exception as exc:  # noqa: BLE001 - a damaged or foreign file is one line
            raise UserError(f"{path} is not a torch.export program ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:160] if str(exc) else ''}); save one with torch.export.save") from None
        return ExportedEncoder(program.module())
    try:
        return torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise UserError(f"{path} is not a TorchScript module ({type(exc).__name__}); "
                        "save one with torch.jit.save, or pass path/to/module.py:function") from exc


def split_output(out: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """An encoder's output -> (codes, aux or None): codes (N, D), or a pair (mean, aux)."""
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
