"""Running a whole sweep: expand the sweep file, lay out its folder, hand the jobs to an executor.

Every job gets ``DIR/<name>/`` (a normal run directory, see ARCHITECTURE.md) named from
its swept settings; ``DIR/sweep.json`` lists the jobs. Re-running the same command skips
finished jobs, resumes interrupted ones from their checkpoints and retries failed ones.
The sweep file format is described in :mod:`pipelines.sweep.spec`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dis_eval.config.evaluation import EvalConfig
from dis_eval.errors import UserError
from dis_eval.run_dir import RunDir, read_json_object
from pipelines.sweep.executors import import_ray, run_local, run_ray
from pipelines.sweep.options import ExecutorOptions
from pipelines.sweep.runner import (
    MANIFEST_FILE,
    JobFn,
    JobResult,
    job_state,
    train_and_evaluate,
    write_json_atomic,
)
from pipelines.sweep.spec import Job, Resolver, SweepSpec, expand_jobs, load_sweep

# ----------------------------------------------------------------------------- config


def resolve_train_config(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Base mapping + overrides -> the complete validated config as ``config.yaml`` holds it
    (defaults and derived keys filled), through the loader ``dis-eval train`` uses."""
    from dis_eval.config.train import TrainConfig

    merged = {**base, **overrides}
    # A relative data/subset path is made absolute (from where the sweep is started), so a
    # job finds its file whatever the working directory of its process or Ray worker.
    for key in ("data", "subset"):
        value = merged.get(key)
        if isinstance(value, str) and value != "dsprites" and Path(value).expanduser().is_file():
            merged[key] = str(Path(value).expanduser().resolve())
    return TrainConfig.from_dict(merged).to_dict()


# ----------------------------------------------------------------------------- layout


def prepare_out_dir(spec: SweepSpec, jobs: Sequence[Job], out_dir: Path) -> None:
    """Write the manifest and each job's ``sweep_job.json``; refuse run directories that
    hold a run of a different config (so a changed sweep never silently reuses them)."""
    conflicts = []
    for job in jobs:
        run_dir = out_dir / job.name
        if not run_dir.is_dir() or not any(run_dir.iterdir()):
            continue
        prev = read_json_object(RunDir(run_dir).sweep_job)
        if prev is None:
            conflicts.append(f"{job.name} (not made by a sweep)")
        elif not _same_job(prev, job):
            conflicts.append(f"{job.name} (differs in {_diff_keys(prev, job)})")
    if conflicts:
        more = f" and {len(conflicts) - 3} more" if len(conflicts) > 3 else ""
        raise UserError(
            f"{out_dir} already holds runs of other settings: {'; '.join(conflicts[:3])}{more}; "
            "use a new --out, or remove those run directories"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    for job in jobs:
        run_dir = out_dir / job.name
        run_dir.mkdir(exist_ok=True)
        write_json_atomic(RunDir(run_dir).sweep_job, {"sweep": spec.name, **job.as_dict()})
    entries = [{"name": j.name, "settings": j.settings, "fingerprint": j.fingerprint} for j in jobs]
    # Jobs of earlier invocations into the same folder (e.g. before a grid was narrowed) stay
    # listed, so --status shows every run the folder holds.
    previous = read_json_object(out_dir / MANIFEST_FILE)
    if isinstance(previous, dict) and isinstance(previous.get("jobs"), list):
        current = {e["name"] for e in entries}
        entries += [e for e in previous["jobs"] if isinstance(e, dict) and e.get("name") not in current
                    and (out_dir / str(e.get("name"))).is_dir()]
    manifest = {
        "name": spec.name,
        "source": str(spec.source) if spec.source else None,
        "notes": spec.notes,
        "evaluation": spec.job_evaluation(),
        "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "jobs": entries,
    }
    write_json_atomic(out_dir / MANIFEST_FILE, manifest)


def _same_job(prev: dict[str, Any], job: Job) -> bool:
    """Whether a run folder's recorded job (its ``sweep_job.json``) is ``job``: the same
    fingerprint, or the same training config and the same evaluation once both are resolved,
    whatever preset (if any) named it. The second test keeps folders usable that were written
    before the evaluation was typed (fewer keys), or before the file named a preset for the
    counts it spelled out: they computed what ``job`` computes."""
    if prev.get("fingerprint") == job.fingerprint:
        return True
    return (prev.get("train_config") == job.train_config
            and _comparable_evaluation(prev.get("evaluation")) == _comparable_evaluation(job.evaluation))


def _comparable_evaluation(raw: Any) -> dict[str, Any]:
    """A recorded evaluation as what it computes: resolved, its preset's name dropped (the
    settings it stands for stay); ``{}`` when it is not a valid evaluation."""
    if not isinstance(raw, dict):
        return {}
    try:
        return {**EvalConfig.from_dict(raw).resolved().as_dict(), "preset": None}
    except UserError:
        return {}


def _diff_keys(prev: dict[str, Any], job: Job) -> str:
    diffs = []
    for a, b in ((prev.get("train_config") or {}, job.train_config),
                 (_comparable_evaluation(prev.get("evaluation")), _comparable_evaluation(job.evaluation))):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                diffs.append(f"{key}: {a.get(key)!r} -> {b.get(key)!r}")
    return ", ".join(diffs[:3]) or "its fingerprint"


# ----------------------------------------------------------------------------- running


def run_sweep(
    sweep: str | Path | SweepSpec,
    out_dir: str | Path,
    options: ExecutorOptions | None = None,
    extra_set: dict[str, Any] | None = None,
    *,
    job_fn: JobFn = train_and_evaluate,
    resolve: Resolver = resolve_train_config,
    report: Callable[[str], None] | None = print,
    pack: int | str | None = None,
) -> list[JobResult]:
    """Run every job of ``sweep`` into ``out_dir``; returns one result per job.

    All job configs are validated first (``extra_set``: base-config overrides, the command
    line's ``--set``). Finished jobs are skipped; the others run as ``options`` says (default
    ``ExecutorOptions()``: one local process at a time): ``local``, ``n_jobs`` processes;
    ``ray``, tasks on the cluster at ``address``, or a local Ray. ``pack`` (``auto`` or a size):
    jobs that differ only in seed and loss weights train and score together as packs, in this
    process (``pipelines.sweep.packs``); the rest go to the executor.
    """
    options = ExecutorOptions() if options is None else options
    if pack is not None and options.executor != "local":
        raise UserError("--pack trains packs in the sweep's own process; use the local executor")
    if options.executor == "ray":
        import_ray()  # a missing Ray fails before anything is written
    spec = sweep if isinstance(sweep, SweepSpec) else load_sweep(sweep)
    out = Path(out_dir)
    merged: list[tuple[str, str]] = []
    jobs = expand_jobs(spec, resolve, extra_set, merged)
    prepare_out_dir(spec, jobs, out)
    say = report or (lambda _msg: None)
    states = {job.name: job_state(out / job.name)[0] for job in jobs}
    todo = [j for j in jobs if not (options.skip_failed and states[j.name] == "failed")]
    n_done = sum(s == "done" for s in states.values())
    say(f"sweep {spec.name}: {len(jobs)} jobs ({n_done} already done) -> {out}  [{options.describe()}]")
    if spec.notes:
        say("notes: " + " ".join(spec.notes.split()))
    for dropped, kept in merged:
        say(f"  {dropped} is the same run as {kept}: run once")
    if options.skip_failed and len(todo) < len(jobs):
        say(f"  leaving {len(jobs) - len(todo)} failed job(s) alone (--skip-failed)")

    counter = {"n": 0}
    total = len(todo)

    def on_result(res: JobResult) -> None:
        if res.status != "retrying":
            counter["n"] += 1
        tag = f"[{counter['n']:>{len(str(total))}}/{total}]"
        extra = f"  ({res.wall_s:.1f} s)" if res.wall_s else ""
        if res.error:
            extra += f"  {res.error}"
        say(f"{tag} {res.status:<8} {res.name}{extra}")

    token = uuid.uuid4().hex
    results: list[JobResult] = []
    if pack is not None:
        from pipelines.sweep.packs import best_pack_size, group_jobs, run_pack_group

        def size(job: Job, n: int) -> int:
            if pack != "auto":
                return int(pack)
            from dis_eval.config.train import TrainConfig

            return best_pack_size(TrainConfig.from_dict(job.train_config, allow_derived=True), n, report=say)

        groups = group_jobs(todo, size)
        todo = [g[0] for g in groups if len(g) == 1]
        for group in (g for g in groups if len(g) > 1):
            say(f"pack of {len(group)}: {', '.join(j.name for j in group)}")
            for res in run_pack_group(group, out, token, options.heartbeat_s):
                results.append(res)
                on_result(res)
    execute = run_local if options.executor == "local" else run_ray
    results += execute(todo, out, job_fn, token, options, report=on_result)
    counts = {s: sum(r.status == s for r in results) for s in ("done", "skipped", "failed", "busy")}
    say(
        f"sweep {spec.name}: {counts['done']} done, {counts['skipped']} already done, "
        f"{counts['failed']} failed"
        + (f", {counts['busy']} held by another live process" if counts["busy"] else "")
    )
    for r in results:
        if r.status == "failed":
            say(f"  failed: {r.name}: {r.error}  (details: {RunDir(out / r.name).failed})")
    return results


def all_succeeded(results: Sequence[JobResult]) -> bool:
    return all(r.status in ("done", "skipped") for r in results)
