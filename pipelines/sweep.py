"""``dis-eval sweep``: run a grid of training + evaluation jobs, locally or on Ray.

    dis-eval sweep SWEEP.yaml --out DIR [--jobs N]                 # local processes
    dis-eval sweep SWEEP.yaml --out DIR --executor ray [--address ADDR]
    dis-eval sweep --status DIR                                    # done/running/failed/pending
    dis-eval sweep SWEEP.yaml --out DIR --list                     # the jobs, without running

Every job gets ``DIR/<name>/`` (a normal run directory, see ARCHITECTURE.md) named from
its swept settings; ``DIR/sweep.json`` lists the jobs. Re-running the same command skips
finished jobs, resumes interrupted ones from their checkpoints and retries failed ones.
The sweep file format is described in :mod:`pipelines.sweep_spec`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from dis_eval.errors import UserError
from pipelines.sweep_executors import import_ray, run_local, run_ray
from pipelines.sweep_runner import (
    HEARTBEAT_S,
    JOB_FILE,
    MANIFEST_FILE,
    JobFn,
    JobResult,
    job_state,
    read_json,
    train_and_evaluate,
    write_json_atomic,
)
from pipelines.sweep_spec import Job, Resolver, SweepSpec, expand_jobs, load_sweep

STATES = ("done", "running", "failed", "pending")


# ----------------------------------------------------------------------------- config


def resolve_train_config(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Base mapping + overrides -> the complete validated config as ``config.yaml`` holds it
    (defaults and derived keys filled), through the loader ``dis-eval train`` uses."""
    from pipelines.config import TrainConfig

    merged = {**base, **overrides}
    # A relative data/subset path is made absolute (from where the sweep is started), so a
    # job finds its file whatever the working directory of its process or Ray worker.
    for key in ("data", "subset"):
        value = merged.get(key)
        if isinstance(value, str) and value != "dsprites" and Path(value).expanduser().is_file():
            merged[key] = str(Path(value).expanduser().resolve())
    return TrainConfig.from_dict(merged).to_dict()


def check_evaluation(spec: SweepSpec) -> None:
    """Metric names and per-metric settings, checked against the registry before any job."""
    from dis_eval.metrics.suite import resolve_metrics, resolve_settings

    ev = spec.evaluation
    try:
        names = resolve_metrics(list(ev.metrics) if ev.metrics else None)
        for metric, overrides in ev.settings.items():
            if metric not in names:
                raise UserError(f"settings given for {metric}, which is not scored")
            resolve_settings(metric, overrides)
    except UserError as exc:
        raise UserError(f"sweep {spec.name!r}, evaluation: {exc}") from None


def parse_set(items: Sequence[str]) -> dict[str, Any]:
    """``key=value`` strings (values read as YAML scalars: 1e-4, null, true) -> dict."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {item!r}: expected key=value, e.g. --set steps=1000")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError:
            raise UserError(f"--set {item!r}: the value is not a valid YAML scalar") from None
    return out


# ----------------------------------------------------------------------------- layout


def prepare_out_dir(spec: SweepSpec, jobs: Sequence[Job], out_dir: Path) -> None:
    """Write the manifest and each job's ``sweep_job.json``; refuse run directories that
    hold a run of a different config (so a changed sweep never silently reuses them)."""
    conflicts = []
    for job in jobs:
        run_dir = out_dir / job.name
        if not run_dir.is_dir() or not any(run_dir.iterdir()):
            continue
        prev = read_json(run_dir / JOB_FILE)
        if not isinstance(prev, dict):
            conflicts.append(f"{job.name} (not made by a sweep)")
        elif prev.get("fingerprint") != job.fingerprint:
            conflicts.append(f"{job.name} (differs in {_diff_keys(prev, job.as_dict())})")
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
        write_json_atomic(run_dir / JOB_FILE, {"sweep": spec.name, **job.as_dict()})
    entries = [{"name": j.name, "settings": j.settings, "fingerprint": j.fingerprint} for j in jobs]
    # Jobs of earlier invocations into the same folder (e.g. before a grid was narrowed) stay
    # listed, so --status shows every run the folder holds.
    previous = read_json(out_dir / MANIFEST_FILE)
    if isinstance(previous, dict) and isinstance(previous.get("jobs"), list):
        current = {e["name"] for e in entries}
        entries += [e for e in previous["jobs"] if isinstance(e, dict) and e.get("name") not in current
                    and (out_dir / str(e.get("name"))).is_dir()]
    manifest = {
        "name": spec.name,
        "source": str(spec.source) if spec.source else None,
        "notes": spec.notes,
        "evaluation": spec.evaluation.as_dict(),
        "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "jobs": entries,
    }
    write_json_atomic(out_dir / MANIFEST_FILE, manifest)


def _diff_keys(prev: dict[str, Any], new: dict[str, Any]) -> str:
    diffs = []
    for part in ("train_config", "evaluation"):
        a, b = prev.get(part) or {}, new.get(part) or {}
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                diffs.append(f"{key}: {a.get(key)!r} -> {b.get(key)!r}")
    return ", ".join(diffs[:3]) or "its fingerprint"


# ----------------------------------------------------------------------------- status


def sweep_status(out_dir: Path) -> list[dict[str, Any]]:
    """State of every job of the sweep in ``out_dir`` (from its manifest, or its run dirs)."""
    if not out_dir.is_dir():
        raise UserError(f"{out_dir} is not a directory: give the --out folder of a sweep")
    manifest = read_json(out_dir / MANIFEST_FILE)
    if isinstance(manifest, dict) and isinstance(manifest.get("jobs"), list):
        names = [j["name"] for j in manifest["jobs"]]
    else:
        names = sorted(p.parent.name for p in out_dir.glob(f"*/{JOB_FILE}"))
    if not names:
        raise UserError(f"{out_dir} holds no sweep (no {MANIFEST_FILE}, no run directories with {JOB_FILE})")
    rows = []
    for name in names:
        state, details = job_state(out_dir / name)
        rows.append({"name": name, "state": state, **details})
    return rows


def _describe(row: dict[str, Any]) -> str:
    bits = []
    if row.get("steps"):
        bits.append(f"step {row.get('step')}/{row['steps']}")
    if row["state"] == "running":
        bits.append(f"pid {row.get('pid')}@{row.get('host')}, heartbeat {row.get('heartbeat_age_s')} s ago")
    if row["state"] == "failed":
        bits.append(str(row.get("error", "")))
    if row.get("resumable"):
        bits.append("resumes from its checkpoint")
    return "  ".join(bits)


def print_status(out_dir: Path, rows: list[dict[str, Any]], file: Any = None) -> None:
    file = file or sys.stdout
    counts = {s: sum(r["state"] == s for r in rows) for s in STATES}
    manifest = read_json(out_dir / MANIFEST_FILE) or {}
    title = manifest.get("name", out_dir.name) if isinstance(manifest, dict) else out_dir.name
    print(
        f"sweep {title} in {out_dir}: {len(rows)} jobs: "
        + ", ".join(f"{counts[s]} {s}" for s in STATES),
        file=file,
    )
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        print(f"  {r['state']:<8} {r['name']:<{width}}  {_describe(r)}".rstrip(), file=file)


# ----------------------------------------------------------------------------- running


def run_sweep(
    sweep: str | Path | SweepSpec,
    out_dir: str | Path,
    executor: str = "local",
    n_jobs: int = 1,
    address: str | None = None,
    max_retries: int = 2,
    extra_set: dict[str, Any] | None = None,
    job_fn: JobFn = train_and_evaluate,
    resolve: Resolver = resolve_train_config,
    heartbeat_s: float = HEARTBEAT_S,
    skip_failed: bool = False,
    cpus_per_job: float = 1.0,
    report: Callable[[str], None] | None = print,
) -> list[JobResult]:
    """Run every job of ``sweep`` into ``out_dir``; returns one result per job.

    All job configs are validated first. Finished jobs are skipped; the others run with
    the chosen executor (``local``: ``n_jobs`` processes; ``ray``: tasks on the cluster at
    ``address``, or a local Ray).
    """
    if executor not in ("local", "ray"):
        raise UserError(f"unknown executor {executor!r}: use local or ray")
    if executor == "ray":
        import_ray()  # a missing Ray fails before anything is written
    spec = sweep if isinstance(sweep, SweepSpec) else load_sweep(sweep)
    out = Path(out_dir)
    merged: list[tuple[str, str]] = []
    check_evaluation(spec)
    jobs = expand_jobs(spec, resolve, extra_set, merged)
    prepare_out_dir(spec, jobs, out)
    say = report or (lambda _msg: None)
    states = {job.name: job_state(out / job.name)[0] for job in jobs}
    todo = [j for j in jobs if not (skip_failed and states[j.name] == "failed")]
    n_done = sum(s == "done" for s in states.values())
    where = f"{executor}" + (f", {n_jobs} at a time" if executor == "local" else f" ({address or 'local instance'})")
    say(f"sweep {spec.name}: {len(jobs)} jobs ({n_done} already done) -> {out}  [{where}]")
    if spec.notes:
        say("notes: " + " ".join(spec.notes.split()))
    for dropped, kept in merged:
        say(f"  {dropped} is the same run as {kept}: run once")
    if skip_failed and len(todo) < len(jobs):
        say(f"  leaving {len(jobs) - len(todo)} failed job(s) alone (--skip-failed)")

    counter = {"n": 0}

    def on_result(res: JobResult) -> None:
        if res.status != "retrying":
            counter["n"] += 1
        tag = f"[{counter['n']:>{len(str(len(todo)))}}/{len(todo)}]"
        extra = f"  ({res.wall_s:.1f} s)" if res.wall_s else ""
        if res.error:
            extra += f"  {res.error}"
        say(f"{tag} {res.status:<8} {res.name}{extra}")

    token = uuid.uuid4().hex
    if executor == "local":
        results = run_local(
            todo, out, job_fn, token, n_jobs=n_jobs, max_retries=max_retries,
            heartbeat_s=heartbeat_s, report=on_result,
        )
    else:
        results = run_ray(
            todo, out, job_fn, token, address=address, max_retries=max_retries,
            heartbeat_s=heartbeat_s, cpus_per_job=cpus_per_job, report=on_result,
        )
    counts = {s: sum(r.status == s for r in results) for s in ("done", "skipped", "failed", "busy")}
    say(
        f"sweep {spec.name}: {counts['done']} done, {counts['skipped']} already done, "
        f"{counts['failed']} failed"
        + (f", {counts['busy']} held by another live process" if counts["busy"] else "")
    )
    for r in results:
        if r.status == "failed":
            say(f"  failed: {r.name}: {r.error}  (details: {out / r.name / 'failed.json'})")
    return results


def all_succeeded(results: Sequence[JobResult]) -> bool:
    return all(r.status in ("done", "skipped") for r in results)


# ----------------------------------------------------------------------------- CLI


def cmd_sweep(args: argparse.Namespace) -> int:
    if args.status is not None:
        out = Path(args.status)
        rows = sweep_status(out)
        if args.json:
            print(json.dumps(rows, indent=2, default=str))
        else:
            print_status(out, rows)
        return 0
    if args.sweep is None or args.out is None:
        raise UserError("give a sweep file and --out DIR (or --status DIR to see a sweep's progress)")
    if args.executor == "local" and args.address:
        raise UserError("--address is for --executor ray")
    if args.executor == "ray" and args.jobs != 1:
        raise UserError("--jobs is for the local executor; Ray runs as many jobs as the cluster fits")
    if args.list:
        spec = load_sweep(args.sweep)
        check_evaluation(spec)
        jobs = expand_jobs(spec, resolve_train_config, parse_set(args.set))
        out = Path(args.out)
        print(f"sweep {spec.name}: {len(jobs)} jobs -> {out}")
        if spec.notes:
            print("notes: " + " ".join(spec.notes.split()))
        for job in jobs:
            print(f"  {job_state(out / job.name)[0]:<8} {job.name}")
        return 0
    results = run_sweep(
        args.sweep, args.out, executor=args.executor, n_jobs=args.jobs, address=args.address,
        max_retries=args.max_retries, extra_set=parse_set(args.set),
        skip_failed=args.skip_failed, cpus_per_job=args.cpus_per_job,
    )
    return 0 if all_succeeded(results) else 1


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "sweep",
        help="run a grid of train+evaluate jobs (local processes or Ray); --status shows progress",
        description=(
            "Run every job of a sweep file (base config x grid) into DIR/<settings>/: train, "
            "then evaluate. Finished jobs are skipped, interrupted ones resume from their "
            "checkpoint, a failed one does not stop the others; exit status 0 only when all "
            "jobs are done. Shipped sweeps: table2 (the paper's Table 2), table2_cpu_small."
        ),
    )
    p.add_argument("sweep", nargs="?", help="sweep YAML file (or a shipped sweep's name)")
    p.add_argument("--out", help="output folder; one run directory per job")
    p.add_argument("--status", metavar="DIR", help="show done/running/failed/pending per job of DIR")
    p.add_argument("--json", action="store_true", help="with --status: print JSON")
    p.add_argument("--list", action="store_true", help="list the jobs and their state; run nothing")
    p.add_argument("--executor", choices=("local", "ray"), default="local")
    p.add_argument("--jobs", type=int, default=1, help="local executor: jobs at a time (default 1)")
    p.add_argument(
        "--address", default=None,
        help="ray: cluster address (auto, HOST:6379, ray://HOST:10001); default a local instance",
    )
    p.add_argument(
        "--max-retries", type=int, default=2,
        help="times a job whose process/worker died is restarted (resuming); errors are not retried",
    )
    p.add_argument("--cpus-per-job", type=float, default=1.0, help="ray: CPUs reserved per job")
    p.add_argument("--skip-failed", action="store_true", help="do not retry jobs that failed before")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override a base config key for every job (repeatable), e.g. --set steps=1000",
    )
    p.set_defaults(func=cmd_sweep)
