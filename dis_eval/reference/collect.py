"""The collector: finished runs of a sweep folder copied into the reference layout
(:mod:`dis_eval.reference.results`), each with its provenance; no weights, no checkpoints.

``scripts/reproduce_reference.sh`` calls it after every GPU session
(``python -m dis_eval.reference collect SWEEP_DIR --set NAME``). A run is collected when it is
trained and scored (``RunDir.is_finished``); an unfinished one is listed with the step it
reached, to be collected by a later session once it has resumed and finished. Collecting again
replaces a run's files (atomically), so the shipped copy always matches the run's latest scores.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dis_eval.atomic import atomic_write_json, atomic_write_text
from dis_eval.errors import UserError
from dis_eval.reference.results import PROVENANCE_FILE, REFERENCE_DIR
from dis_eval.run_dir import CONFIG_FILE, METRICS_FILE, SWEEP_JOB_FILE, RunDir, read_json_object


@dataclass
class CollectReport:
    """What a collection did: runs copied, runs left (with why), where."""

    dest: Path
    collected: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)  # "name: why" per run not collected

    def lines(self) -> list[str]:
        out = [f"collected {len(self.collected)} finished run(s) into {self.dest}"]
        out += [f"  {name}" for name in self.collected]
        if self.left:
            out.append(f"not collected ({len(self.left)}):")
            out += [f"  {why}" for why in self.left]
        return out


def device_description(device: str | None) -> dict[str, Any]:
    """The device a run trained on, as this machine names it: ``{"device", "device_name"}``
    (the GPU's name for ``cuda``, the processor for ``cpu``) and the CUDA and cuDNN versions
    of the torch build. The collector runs on the machine that trained (the script's order)."""
    import torch

    out: dict[str, Any] = {"device": device, "torch": torch.__version__, "cuda": torch.version.cuda,
                           "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None}
    if device and device.startswith("cuda") and torch.cuda.is_available():
        index = int(device.split(":")[1]) if ":" in device else 0
        out["device_name"] = torch.cuda.get_device_name(index)
    elif device and device.startswith("cuda"):
        out["device_name"] = None
        out["device_name_undefined"] = "collected on a machine without CUDA"
    else:
        out["device_name"] = platform.processor() or platform.machine()
    return out


def run_provenance(run: RunDir, set_name: str) -> dict[str, Any]:
    """provenance.json for a finished run: where and how long it trained, with what code."""
    from dis_eval.provenance import code_commit, library_versions, utc_now

    config = run.read_config_dict()
    summary = run.read_summary() or {}
    metrics = run.read_metrics() or {}
    sweep_job = read_json_object(run.sweep_job) or {}
    device = str(summary.get("device") or config.get("device_used") or config.get("device"))
    return {
        "set": set_name,
        "run": run.name,
        "sweep": sweep_job.get("sweep"),
        **device_description(device),
        "cuda_graph": summary.get("cuda_graph"),
        "versions": library_versions(),
        **code_commit(),
        "steps_trained": summary.get("step"),
        "steps_config": config.get("steps"),
        "step_unit": config.get("step_unit", "batch"),
        "wall_s": summary.get("wall_s"),
        "steps_per_s": summary.get("steps_per_s"),
        "training_status": summary.get("status"),
        "evaluated_at": metrics.get("evaluated_at"),
        "data": metrics.get("data"),
        "collected_at": utc_now(),
    }


def collect_runs(sweep_dir: str | os.PathLike, set_name: str, dest_root: str | os.PathLike | None = None
                 ) -> CollectReport:
    """Copy every finished run below ``sweep_dir`` into ``dest_root/set_name/<run>/``
    (default root: the package's shipped set) as config.yaml, metrics.json, provenance.json."""
    src = Path(sweep_dir)
    if not src.is_dir():
        raise UserError(f"{src} does not exist; give the sweep's --out folder")
    if not set_name or set_name != Path(set_name).name or set_name.startswith("."):
        raise UserError(f"reference set name {set_name!r} must be a plain folder name, e.g. reference_beta1")
    dest = Path(dest_root if dest_root is not None else REFERENCE_DIR) / set_name
    # Run folders, and the sweep's job folders not started yet (only their sweep_job.json).
    runs = sorted({p.parent for name in (CONFIG_FILE, SWEEP_JOB_FILE) for p in src.rglob(name)})
    if not runs:
        raise UserError(f"no run folders (with {CONFIG_FILE} or {SWEEP_JOB_FILE}) in {src}")
    report = CollectReport(dest)
    for path in runs:
        run = RunDir(path)
        name = collected_name(path, src)
        if not run.is_finished():
            report.left.append(f"{name}: {_progress(run)}; the next run of the script continues it")
            continue
        if read_json_object(run.metrics) is None:
            report.left.append(f"{name}: {METRICS_FILE} is not a JSON object")
            continue
        target = dest / name
        atomic_write_text(target / CONFIG_FILE, run.config.read_text(encoding="utf-8"))
        atomic_write_text(target / METRICS_FILE, run.metrics.read_text(encoding="utf-8"))
        atomic_write_json(target / PROVENANCE_FILE, run_provenance(run, set_name), indent=2)
        report.collected.append(name)
    return report


def collected_name(run_dir: Path, sweep_dir: Path) -> str:
    """A run's folder name in the collected set: its path below the sweep folder, parts joined
    by ``__`` (``model=echo__seed=0``; a pack's member ``echo-pack/seed0`` -> ``echo-pack__seed0``),
    so members of different packs never share a name."""
    rel = run_dir.resolve().relative_to(sweep_dir.resolve())
    return "__".join(rel.parts) or run_dir.name


def _progress(run: RunDir) -> str:
    """How far an unfinished run got, from its summary."""
    if run.is_trained():
        return "trained, not scored yet"
    if not run.is_run():
        return "not started"
    summary = run.read_summary() or {}
    step, steps = summary.get("step"), summary.get("steps")
    if isinstance(step, int) and isinstance(steps, int):
        return f"trained {step:,} of {steps:,} steps"
    return "not started"
