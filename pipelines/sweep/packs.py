"""Sweeps in packs (``dis-eval sweep FILE --pack auto|N``): jobs that differ only in their seed
and loss weights (and share the evaluation) are trained together as packs
(``pipelines.train.pack``) and scored with one grouped encoding pass
(``pipelines.evaluate.pack``). Each job keeps its own run folder, state and lock, so
``--status``, re-runs and resumption behave as for single jobs; the pack's own files live in
``OUT/_packs/<id>/``.

``auto`` picks, per architecture and device, the pack size with the most model-steps per second,
probed briefly once (a few timed steps per size) and remembered in the cache file
:data:`PACK_SIZE_CACHE` (``$DIS_EVAL_CACHE/pack_sizes.json``; default ``~/.cache/dis-eval``).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dis_eval.atomic import atomic_write_json
from dis_eval.errors import UserError
from dis_eval.run_dir import RunDir, read_json_object
from pipelines.sweep.runner import JobLock, JobResult, write_failed
from pipelines.sweep.spec import Job

PACKS_DIR = "_packs"  # in the sweep's folder: one folder per pack
PACK_SIZE_CACHE = Path(os.environ.get("DIS_EVAL_CACHE", "~/.cache/dis-eval")).expanduser() / "pack_sizes.json"
PROBE_SIZES: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
PROBE_STEPS = 5  # timed steps per probed size (after 2 warm-up steps)
Probe = Callable[[Any, Sequence[int]], dict[int, float]]


def parse_pack(text: str | int | None) -> int | str | None:
    """``--pack``: None (no packs), ``auto``, or a size >= 1."""
    if text is None or text == "auto":
        return text
    try:
        size = int(text)
    except (TypeError, ValueError):
        raise UserError(f"--pack takes auto or a pack size (a whole number >= 1), got {text!r}") from None
    if size < 1:
        raise UserError(f"--pack must be at least 1, got {size}")
    return size


def _config(job: Job) -> Any:
    from dis_eval.config.train import TrainConfig

    return TrainConfig.from_dict(job.train_config, allow_derived=True)


def group_key(job: Job) -> str:
    """Jobs with equal keys may share a pack: same config but for seed and loss weights, and
    the same evaluation."""
    from pipelines.train.pack import pack_key

    return json.dumps([pack_key(_config(job)), job.evaluation], sort_keys=True, default=str)


def group_jobs(jobs: Sequence[Job], size: int | Callable[[Job, int], int]) -> list[list[Job]]:
    """Jobs in packs: by :func:`group_key` (in order of first appearance), each group cut into
    packs of at most ``size`` (or ``size(first job, group length)``). Deterministic in the job
    list alone (not in what is done), so a re-run forms the same packs."""
    groups: dict[str, list[Job]] = {}
    for job in jobs:
        groups.setdefault(group_key(job), []).append(job)
    packs = []
    for members in groups.values():
        n = size(members[0], len(members)) if callable(size) else size
        if n < 1:
            raise UserError(f"pack size must be >= 1, got {n}")
        packs += [members[i:i + n] for i in range(0, len(members), n)]
    return packs


# ---- auto: the fastest pack size ------------------------------------------------------------

def _device_name(device: Any) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu x{torch.get_num_threads()}"


def probe_key(cfg: Any) -> str:
    """What the best size depends on: the device, PyTorch, and the step's shape."""
    import torch

    from dis_eval.device import resolve_device

    device = resolve_device(cfg.device)
    shape = {k: getattr(cfg, k) for k in ("model", "latents", "batch_size", "channels_last", "cuda_graph", "tf32")}
    shape["d_max"] = cfg.resolved_d_max() if cfg.family == "echo" else None
    return json.dumps([_device_name(device), torch.__version__, shape], sort_keys=True)


def probe_pack_sizes(cfg: Any, sizes: Sequence[int]) -> dict[int, float]:
    """Model-steps per second of packs of each size in ``sizes`` for ``cfg``'s step (on its
    device, with random rows of a stand-in data set of the real one's format)."""
    import torch

    from dis_eval.device import resolve_device
    from pipelines.train.loop import training_data
    from pipelines.train.pack import build_pack_training

    device = resolve_device(cfg.device)
    data = training_data(cfg, device)
    out: dict[int, float] = {}
    for m in sizes:
        cfgs = [cfg.replace(seed=s) for s in range(m)]
        t = build_pack_training(cfgs, data, device)
        for _ in range(2):
            t.run_step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        for _ in range(PROBE_STEPS):
            t.run_step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        out[m] = m * PROBE_STEPS / (time.perf_counter() - t0)
        del t
    return out


def best_pack_size(cfg: Any, limit: int, cache: Path | None = None, probe: Probe = probe_pack_sizes,
                   report: Callable[[str], None] | None = None) -> int:
    """The fastest pack size (model-steps/s) for ``cfg`` on this device, at most ``limit``:
    from the cache when probed before, else probed now and remembered."""
    cache = PACK_SIZE_CACHE if cache is None else cache
    key = probe_key(cfg)
    known = read_json_object(cache) or {}
    entry = known.get(key)
    if not (isinstance(entry, dict) and isinstance(entry.get("rates"), dict)):
        entry = {"rates": {}}
    # Probe the sizes this group could use that were never probed (small groups probe little).
    missing = [m for m in PROBE_SIZES if m <= max(limit, 1) and str(m) not in entry["rates"]]
    if missing:
        rates = probe(cfg, missing)
        entry["rates"].update({str(k): float(v) for k, v in rates.items()})
        entry["probed"] = time.strftime("%Y-%m-%d %H:%M:%S")
        known[key] = entry
        cache.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(cache, known, sort_keys=True)
        if report:
            report(f"pack sizes probed ({cache}): " + ", ".join(f"{k}: {v:.0f}/s" for k, v in entry["rates"].items()))
    rates = {int(k): float(v) for k, v in entry["rates"].items() if int(k) <= max(limit, 1)}
    return max(rates, key=lambda k: (rates[k], -k)) if rates else 1


# ---- running a pack of jobs ------------------------------------------------------------------

def pack_folder(out_dir: Path, group: Sequence[Job]) -> Path:
    """``OUT/_packs/<id>``: the id hashes the members' names (a re-run finds the same folder)."""
    digest = hashlib.sha256("\n".join(j.name for j in group).encode()).hexdigest()[:12]
    return out_dir / PACKS_DIR / f"pack-{digest}"


def run_pack_group(group: Sequence[Job], out_dir: Path, token: str, heartbeat_s: float) -> list[JobResult]:
    """Train and score one pack of jobs in this process: each job's folder is a member. Jobs
    already done are skipped; a member that diverged, or an error, is recorded as that job's
    failure (failed.json) as for single jobs."""
    from pipelines.evaluate.pack import evaluate_pack
    from pipelines.sweep.runner import load_training_data, scores_training_rows
    from pipelines.train.pack import PackDir, train_pack

    out_dir = Path(out_dir)
    runs = [RunDir(out_dir / j.name) for j in group]
    if all(r.is_finished() for r in runs):
        return [JobResult(j.name, "skipped", attempts=0) for j in group]
    locks = []
    for job, run in zip(group, runs, strict=True):
        lock = JobLock(run.path, token, heartbeat_s)
        if not lock.acquire():
            for held in locks:
                held.release()
            h = lock.holder or {}
            return [JobResult(j.name, "busy", error=f"{job.name} held by pid {h.get('pid')} on {h.get('host')}",
                              attempts=0) for j in group]
        locks.append(lock)
    t0 = time.time()
    try:
        for run in runs:
            run.failed.unlink(missing_ok=True)
        pdir = PackDir(pack_folder(out_dir, group))
        eval_config = group[0].eval_config()
        data = None
        try:
            if not all(r.is_trained() for r in runs):
                cfgs = [_config(j) for j in group]
                data = load_training_data(cfgs[0])
                members = [f"../../{j.name}" for j in group]
                if pdir.is_pack():
                    train_pack(None, pdir.path, resume=True, progress=False, data=data)
                else:
                    train_pack(cfgs, pdir.path, progress=False, data=data, member_dirs=members)
                if not scores_training_rows(eval_config, cfgs[0].subset):
                    data = None
            trained = [r for r in runs if r.is_trained() and not r.is_finished()]
            if trained:
                evaluate_pack([r.path for r in trained], eval_config, data=data)
        except Exception as exc:  # noqa: BLE001 - recorded for every member, as run_job does for one job
            msg = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
            for run in runs:
                if not run.is_finished():
                    write_failed(run.path, msg, traceback.format_exc())
        results = []
        for job, run in zip(group, runs, strict=True):
            if run.is_finished():
                results.append(JobResult(job.name, "done", time.time() - t0))
                continue
            info = read_json_object(run.failed)
            if info is None:  # a retired member: its summary says why
                msg = (run.read_summary() or {}).get("error", "the pack finished without training this member")
                write_failed(run.path, msg)
            else:
                msg = info.get("error", "")
            results.append(JobResult(job.name, "failed", time.time() - t0, msg))
        return results
    finally:
        for lock in locks:
            lock.release()
