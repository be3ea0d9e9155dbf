"""Submissions: an upload that becomes a score job, safest kind first.

1. ``codes``: a codes ``.npz`` (read with ``allow_pickle=False`` by the same reader and checks
   as ``dis-eval score``: shape, dtype, finiteness, one row per data row), scored by
   ``dis-eval score``.
2. ``weights``: weights of a built-in architecture (``model``, ``latents``, ``d_max`` for Echo),
   as safetensors or a torch file read with ``torch.load(weights_only=True)`` (a plain state
   dict, or a dis-eval ``model.pt`` whose saved config names the architecture); the job encodes
   the data with the model, then scores the codes.
3. ``onnx``: an ONNX encoder ``[N, 1, 64, 64] -> [N, D]`` (checked by
   ``onnx_runner.check_onnx_model``), run by onnxruntime's CPU provider in a throw-away process
   with memory and CPU limits, then scored.

Everything is checked when it is uploaded (a bad file is a 400 with one line; a file over its
kind's limit a 413) and nothing a user uploads is unpickled or executed in the server. The
upload lies in ``ROOT/.dis-eval-service/uploads/<job id>/``; the scored result in
``ROOT/.dis-eval-service/submissions/<job id>/`` (metrics.json, then submission.json last).
"""

from __future__ import annotations

import io
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from dis_eval.errors import UserError
from pipelines.serve.settings import ServeSettings

UPLOAD_KINDS: tuple[str, ...] = ("codes", "weights", "onnx")
UPLOAD_FILES: dict[str, str] = {"codes": "codes.npz", "weights": "weights", "onnx": "encoder.onnx"}
ENCODED_FILE = "codes.npz"  # what a weights/onnx job's encoding step writes into the upload folder
WEIGHT_FORMATS: tuple[str, ...] = ("safetensors", "torch")
SAFETENSORS_SUFFIX = ".safetensors"
GRID = "grid"          # dSprites' factors only: codes computed elsewhere
DSPRITES = "dsprites"  # the prepared data set (images)
NAME_RE = re.compile(r"^[\w .,:()+=@-]{1,80}$")
COPY_CHUNK = 1 << 20


class TooLarge(UserError):
    """An upload over its size limit (the API answers 413)."""


def max_upload_bytes(settings: ServeSettings) -> int:
    """The largest file any kind accepts (a request's body may not exceed it, plus the form)."""
    return max(settings.max_codes_bytes, settings.max_weights_bytes, settings.max_onnx_bytes)


def kind_limit(settings: ServeSettings, kind: str) -> int:
    return {"codes": settings.max_codes_bytes, "weights": settings.max_weights_bytes,
            "onnx": settings.max_onnx_bytes}[kind]


def data_choices(settings: ServeSettings, kind: str) -> list[str]:
    """The data a submission of ``kind`` may be scored on: the factor grid (codes only), the
    prepared dSprites, and the official-format files the server was started with (by name)."""
    base = [GRID, DSPRITES] if kind == "codes" else [DSPRITES]
    return base + [Path(f).name for f in settings.data_files]


def data_source(settings: ServeSettings, kind: str, name: str) -> str:
    """The ``--data`` of the score job for a choice of ``data_choices``."""
    if name not in data_choices(settings, kind):
        raise UserError(f"data must be one of {', '.join(data_choices(settings, kind))}, got {name!r}")
    for f in settings.data_files:
        if Path(f).name == name:
            return str(f)
    return name


@dataclass(frozen=True)
class Architecture:
    """A built-in architecture for uploaded weights (``dis_eval.models.spec.ModelSpec``'s fields)."""

    model: str
    latents: int
    d_max: int | None

    def spec(self) -> Any:
        from dis_eval.models.spec import MODELS, ModelSpec

        if self.model not in MODELS:
            raise UserError(f"model must be one of {', '.join(MODELS)}, got {self.model!r}")
        return ModelSpec(model=self.model, latents=self.latents, d_max=self.d_max)


def _int_field(fields: dict[str, str], key: str, default: int | None) -> int | None:
    text = (fields.get(key) or "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise UserError(f"{key} must be an integer, got {text!r}") from None


def _list_field(fields: dict[str, str], key: str) -> list[str]:
    text = (fields.get(key) or "").strip()
    return [t.strip() for t in re.split(r"[,\n]", text) if t.strip()] if text else []


def read_state_dict(data: bytes, filename: str, what: str = "the weights") -> tuple[dict[str, Any], dict | None]:
    """(state dict, saved config or None) from safetensors bytes or a torch file, neither of
    which can run code: safetensors holds tensors only, ``torch.load`` runs with
    ``weights_only=True``."""
    import torch

    if filename.lower().endswith(SAFETENSORS_SUFFIX):
        from safetensors.torch import load as load_safetensors

        try:
            return load_safetensors(data), None
        except Exception as exc:  # noqa: BLE001 - damaged files are one line
            raise UserError(f"{what} are not a readable safetensors file ({type(exc).__name__})") from None
    try:
        blob = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a pickle with code, random bytes, truncation
        why = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{what} cannot be read with torch.load(weights_only=True): {why}") from None
    if isinstance(blob, dict) and isinstance(blob.get("state_dict"), dict):
        return blob["state_dict"], blob.get("config") if isinstance(blob.get("config"), dict) else None
    if isinstance(blob, dict) and all(isinstance(v, torch.Tensor) for v in blob.values()) and blob:
        return blob, None
    raise UserError(f"{what} hold {type(blob).__name__}, not a state dict of tensors (or a dis-eval model.pt)")


def load_weights(data: bytes, filename: str, arch: Architecture | None) -> tuple[Any, Architecture]:
    """The built-in model with the uploaded weights loaded (strictly: every key and shape must
    fit), and the architecture it was built as."""
    from dis_eval.models.build import build_model

    state, config = read_state_dict(data, filename)
    if arch is None:
        if config is None:
            raise UserError("give model, latents (and d_max for Echo models): the weights do not say "
                            "which architecture they belong to")
        from dis_eval.models.spec import ModelSpec

        spec = ModelSpec.from_config(config)
        arch = Architecture(spec.model, spec.latents, spec.d_max)
    model, _ = build_model(arch.spec())
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines()[1:] if ln.strip()]
        detail = "; ".join(lines)[:300] or str(exc).splitlines()[0]
        raise UserError(f"the weights do not fit the built-in {arch.model} with {arch.latents} latents: {detail}") from None
    return model.eval(), arch


def _architecture(fields: dict[str, str]) -> Architecture | None:
    model = (fields.get("model") or "").strip()
    if not model:
        return None
    from dis_eval.models.spec import MODELS

    if model not in MODELS:
        raise UserError(f"model must be one of {', '.join(MODELS)}, got {model!r}")
    latents = _int_field(fields, "latents", 10)
    d_max = _int_field(fields, "d_max", None)
    return Architecture(model=model, latents=int(latents or 0), d_max=d_max if MODELS[model].family == "echo" else None)


def _save_upload(src: IO[bytes], dest: Path, limit: int, label: str) -> int:
    """Copy the uploaded file to ``dest`` (atomically), refusing more than ``limit`` bytes."""
    from dis_eval.atomic import atomic_path

    size = 0
    with atomic_path(dest, suffix=dest.suffix or ".bin") as tmp, open(tmp, "wb") as out:
        while chunk := src.read(COPY_CHUNK):
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"the {label} file is larger than this server's limit of {limit // (1024 * 1024)} MiB")
            out.write(chunk)
    if size == 0:
        dest.unlink(missing_ok=True)
        raise UserError("the uploaded file is empty")
    return size


def accept_submission(settings: ServeSettings, fields: dict[str, str], upload: IO[bytes], filename: str,
                      job_id: str) -> dict[str, Any]:
    """Check one upload completely and store it; the score job's parameters. Any problem is a
    one-line ``UserError`` (``TooLarge`` over the kind's limit) and nothing is left behind."""
    from pipelines.serve.jobs import Scoring

    kind = (fields.get("kind") or "").strip()
    if kind not in UPLOAD_KINDS:
        raise UserError(f"kind must be one of {', '.join(UPLOAD_KINDS)}, got {kind!r}")
    name = (fields.get("name") or "").strip() or f"{kind}-{job_id[:8]}"
    if not NAME_RE.match(name):
        raise UserError("name: 1-80 letters, digits, spaces and .,:()+=@-")
    data = (fields.get("data") or (GRID if kind == "codes" else DSPRITES)).strip()
    source = data_source(settings, kind, data)
    subset = (fields.get("subset") or "").strip() or None
    scoring = Scoring.from_params({"metrics": _list_field(fields, "metrics"), "set": _list_field(fields, "set"),
                                   "preset": (fields.get("preset") or "").strip() or None,
                                   "representation": (fields.get("representation") or "").strip() or None,
                                   "seed": _int_field(fields, "seed", 0), "repeats": _int_field(fields, "repeats", 1)})
    folder = settings.uploads_dir / job_id
    suffix = SAFETENSORS_SUFFIX if kind == "weights" and filename.lower().endswith(SAFETENSORS_SUFFIX) else ""
    dest = folder / (UPLOAD_FILES[kind] + (suffix or (".pt" if kind == "weights" else "")))
    try:
        _save_upload(upload, dest, kind_limit(settings, kind), kind)
        params: dict[str, Any] = {"upload": kind, "file": dest.name, "name": name, "data": data, "subset": subset,
                                  "scoring": scoring.to_params(), "filename": Path(filename or "").name[:200]}
        if kind == "codes":
            _check_codes(dest, source, subset)
        elif kind == "weights":
            _, arch = load_weights(dest.read_bytes(), dest.name, _architecture(fields))
            params["architecture"] = {"model": arch.model, "latents": arch.latents, "d_max": arch.d_max}
        else:
            from pipelines.serve.onnx_runner import check_onnx_model

            check_onnx_model(dest.read_bytes(), f"the ONNX encoder {params['filename'] or dest.name}")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return params


def _check_codes(path: Path, source: str, subset: str | None) -> None:
    """The checks ``dis-eval score`` makes, against the data the job will score on."""
    from pipelines.evaluate.codes_file import load_codes_file
    from pipelines.evaluate.data import load_eval_data

    data = load_eval_data(source, subset, "cpu", need_images=False)
    load_codes_file(path, data)


# ---- the score job ----------------------------------------------------------------------------------

def score_steps(params: dict[str, Any], settings: ServeSettings, job_id: str) -> list[list[str]]:
    """The command lines of a submission's score job: encode (weights, onnx), then score."""
    from pipelines.serve.jobs import Scoring

    folder = settings.uploads_dir / job_id
    upload = folder / params["file"]
    if not upload.is_file():
        raise UserError(f"the upload of job {job_id} is gone ({upload})")
    source = data_source(settings, params["upload"], params["data"])
    subset = ["--subset", params["subset"]] if params.get("subset") else []
    codes = upload if params["upload"] == "codes" else folder / ENCODED_FILE
    steps: list[list[str]] = []
    if params["upload"] == "weights":
        arch = params["architecture"]
        steps.append([sys.executable, "-m", "pipelines.serve.uploads", "encode-weights", str(upload),
                      "--model", arch["model"], "--latents", str(arch["latents"]),
                      *(["--d-max", str(arch["d_max"])] if arch.get("d_max") is not None else []),
                      "--data", source, *subset, "--out", str(codes)])
    elif params["upload"] == "onnx":
        steps.append([sys.executable, "-m", "pipelines.serve.onnx_runner", str(upload), "--data", source, *subset,
                      "--out", str(codes), "--memory-bytes", str(settings.onnx_memory_bytes),
                      "--cpu-s", str(settings.onnx_cpu_s)])
    scoring = Scoring.from_stored(params["scoring"])
    metrics = settings.submissions_dir / job_id / "metrics.json"
    steps.append([sys.executable, "-m", "pipelines.cli", "score", str(codes), "--data", source, *subset,
                  *scoring.argv(), "--out", str(metrics)])
    return steps


def finish_submission(params: dict[str, Any], settings: ServeSettings, job_id: str) -> dict[str, Any]:
    """After the score step: write submission.json (last: the leaderboard lists a submission
    once it is there); the job's result."""
    from dis_eval.atomic import atomic_write_json
    from dis_eval.run_dir import RunDir
    from pipelines.serve.catalog import SUBMISSION_FILE

    folder = RunDir(settings.submissions_dir / job_id)
    metrics = folder.read_metrics()
    if metrics is None:
        raise UserError(f"the score step wrote no readable {folder.metrics}")
    arch = params.get("architecture") or {}
    info = {"id": job_id, "name": params["name"], "kind": params["upload"], "filename": params.get("filename"),
            "model": arch.get("model"), "architecture": arch or None, "data": params["data"],
            "subset": params.get("subset"), "scored_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    atomic_write_json(folder.path / SUBMISSION_FILE, info)
    return {"submission": job_id, "headline": metrics.get("headline")}


# ---- the weights job's encoding step ---------------------------------------------------------------

def encode_weights(path: Path, arch: Architecture, source: str, subset: str | None, out: Path) -> int:
    from dis_eval.encode import encode_data
    from pipelines.evaluate.codes_file import save_codes_file
    from pipelines.evaluate.data import load_eval_data

    model, _ = load_weights(path.read_bytes(), path.name, arch)
    data = load_eval_data(source, subset, "cpu")
    codes = encode_data(model, data, batch_size=256, device="cpu")
    save_codes_file(out, codes, data)
    return len(data)


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m pipelines.serve.uploads")
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("encode-weights", help="encode a data set with uploaded weights of a built-in model")
    e.add_argument("weights")
    e.add_argument("--model", required=True)
    e.add_argument("--latents", type=int, required=True)
    e.add_argument("--d-max", type=int, default=None)
    e.add_argument("--data", required=True)
    e.add_argument("--subset", default=None)
    e.add_argument("--out", required=True)
    args = p.parse_args(argv)
    try:
        rows = encode_weights(Path(args.weights), Architecture(args.model, args.latents, args.d_max), args.data,
                              args.subset, Path(args.out))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"encoded {rows} rows -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
