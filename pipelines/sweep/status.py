"""A sweep's progress, read from its folder alone.

Every job's state (done / running / failed / pending) comes from its run folder, so any process
on any host sharing the storage sees the same answer."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from dis_eval.errors import UserError
from dis_eval.run_dir import SWEEP_JOB_FILE, RunDir, read_json_object
from pipelines.sweep.runner import MANIFEST_FILE, job_state

STATES = ("done", "running", "failed", "pending")


def sweep_status(out_dir: Path) -> list[dict[str, Any]]:
    """State of every job of the sweep in ``out_dir`` (from its manifest, or its run dirs)."""
    if not out_dir.is_dir():
        raise UserError(f"{out_dir} is not a directory: give the --out folder of a sweep")
    manifest = read_json_object(out_dir / MANIFEST_FILE)
    if manifest is not None and isinstance(manifest.get("jobs"), list):
        names = [j["name"] for j in manifest["jobs"]]
    else:
        names = sorted(p.name for p in out_dir.iterdir() if RunDir(p).sweep_job.is_file())
    if not names:
        raise UserError(f"{out_dir} holds no sweep (no {MANIFEST_FILE}, no run directories with {SWEEP_JOB_FILE})")
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
    manifest = read_json_object(out_dir / MANIFEST_FILE) or {}
    title = manifest.get("name", out_dir.name)
    print(
        f"sweep {title} in {out_dir}: {len(rows)} jobs: "
        + ", ".join(f"{counts[s]} {s}" for s in STATES),
        file=file,
    )
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        print(f"  {r['state']:<8} {r['name']:<{width}}  {_describe(r)}".rstrip(), file=file)
