"""Load on ``dis-eval serve`` (loopback only): concurrent reads of the API and the pages while its
workers score uploaded codes. Reports requests/s, latency percentiles (overall and per
endpoint) and every failed request; exits 1 if any request failed.

    python benchmarks/bench_serve.py                          # the small test run tree, built here
    python benchmarks/bench_serve.py --root dis-eval-output --clients 16 --duration 60 --workers 2
    python benchmarks/bench_serve.py --duration 5 --clients 2 --jobs 1   # a quick check

The server runs in its own process with ``--workers`` worker processes; ``--jobs`` codes
submissions (the factors of the real-image fixture plus noise, scored on MIG and the FactorVAE
score) are queued first so the workers score while the clients read, and more are queued
whenever the queue runs dry. Each client is a thread with one keep-alive connection, cycling
through the endpoints. The load generator shares the machine with the server: on a small
machine it takes CPU from the server, so the figures are a floor.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import math
import platform
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.serve_browser import serve  # noqa: E402
from tests.serve_tree import FIXTURE, build_run_tree  # noqa: E402


def endpoints(root: Path) -> list[str]:
    """The read mix: JSON API and pages, every kind of read the service answers."""
    from pipelines.serve import catalog

    runs = catalog.list_runs(root)
    if not runs:
        raise SystemExit(f"no run folders below {root}")
    first = runs[0].id
    figured = next((r for r in runs if r.figures), None)
    out = ["/healthz", "/api/runs", "/api/runs?grouped=true", f"/api/runs/{first}", "/api/compare",
           "/api/leaderboard?metric=mig", "/api/jobs", "/", "/?grouped=1", f"/runs/{first}", "/leaderboard"]
    if figured:
        png = next((f for f in figured.figures if f.endswith(".png")), figured.figures[0])
        out.append(f"/api/runs/{figured.id}/figures/{png}")
    return out


def codes_file() -> bytes:
    with np.load(FIXTURE, allow_pickle=False) as f:
        factors = f["latents_classes"][:, 1:].astype(np.float32)
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    np.savez(buf, codes=factors + rng.normal(0, 0.05, factors.shape).astype(np.float32))
    return buf.getvalue()


def submit(port: int, payload: bytes, name: str) -> str:
    """POST a codes submission (multipart) and return its job id."""
    boundary = uuid.uuid4().hex
    fields = {"kind": "codes", "name": name, "data": FIXTURE.name, "metrics": "mig,factor_vae",
              "set": "mig.num_train=1000,factor_vae.num_train=200,factor_vae.num_eval=100,"
                     "factor_vae.num_variance_estimate=1000"}
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="codes.npz"\r\n'
                 "Content-Type: application/octet-stream\r\n\r\n".encode() + payload + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("POST", "/api/submissions", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    r = conn.getresponse()
    answer = json.loads(r.read())
    conn.close()
    if r.status != 201:
        raise SystemExit(f"submission rejected ({r.status}): {answer}")
    return str(answer["id"])


def get_json(port: int, path: str) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", path)
    r = conn.getresponse()
    data = json.loads(r.read())
    conn.close()
    return data


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return math.nan
    k = min(len(sorted_values) - 1, max(0, math.ceil(q / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def client(port: int, paths: list[str], offset: int, stop: threading.Event, out: list[tuple[str, float, int | str]]) -> None:
    """One reader: a keep-alive connection cycling through ``paths``; (path, seconds, status or error)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    i = offset
    while not stop.is_set():
        path = paths[i % len(paths)]
        i += 1
        t0 = time.perf_counter()
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            r.read()
            out.append((path, time.perf_counter() - t0, r.status))
        except (OSError, http.client.HTTPException) as exc:
            out.append((path, time.perf_counter() - t0, f"{type(exc).__name__}: {exc}"))
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.close()


def summarise(samples: list[tuple[str, float, int | str]], seconds: float) -> dict[str, Any]:
    lat = sorted(s for _, s, _ in samples)
    failed = [(p, status) for p, _, status in samples if status != 200]
    per: dict[str, Any] = {}
    for path in sorted({p for p, _, _ in samples}):
        mine = sorted(s for p, s, _ in samples if p == path)
        per[path] = {"n": len(mine), "p50_ms": 1e3 * percentile(mine, 50), "p99_ms": 1e3 * percentile(mine, 99)}
    return {"requests": len(samples), "seconds": seconds, "requests_per_s": len(samples) / seconds,
            "p50_ms": 1e3 * percentile(lat, 50), "p95_ms": 1e3 * percentile(lat, 95),
            "p99_ms": 1e3 * percentile(lat, 99), "max_ms": 1e3 * (lat[-1] if lat else math.nan),
            "failed": len(failed), "failures": failed[:20], "per_endpoint": per}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=None, help="run folders to serve (default: build the small test tree)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--clients", type=int, default=8, help="concurrent readers")
    p.add_argument("--duration", type=float, default=30.0, help="seconds of load")
    p.add_argument("--jobs", type=int, default=4, help="codes submissions queued before the load starts")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_serve_") as tmp:
        root = args.root
        if root is None:
            print("building the small run tree ...", flush=True)
            root = build_run_tree(Path(tmp))
        paths = endpoints(root)
        payload = codes_file()
        log = Path(tmp) / "serve.log"
        with serve(root, workers=args.workers, data_files=[FIXTURE], log=log) as url:
            port = int(url.rsplit(":", 1)[1])
            submitted = [submit(port, payload, f"bench {k}") for k in range(args.jobs)]
            # Wait until a worker is scoring, so the reads overlap the work.
            deadline = time.monotonic() + 60
            while get_json(port, "/api/jobs?state=running")["jobs"] == [] and time.monotonic() < deadline:
                time.sleep(0.2)
            samples: list[tuple[str, float, int | str]] = []
            stop = threading.Event()
            threads = [threading.Thread(target=client, args=(port, paths, k, stop, samples), daemon=True)
                       for k in range(args.clients)]
            busy_polls = polls = 0
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            while time.perf_counter() - t0 < args.duration:
                counts = get_json(port, "/api/jobs?limit=1")["counts"]
                polls += 1
                busy_polls += counts.get("running", 0) > 0
                if counts.get("queued", 0) == 0 and counts.get("running", 0) < args.workers:
                    submitted.append(submit(port, payload, f"bench {len(submitted)}"))
                time.sleep(0.5)
            stop.set()
            for t in threads:
                t.join()
            seconds = time.perf_counter() - t0
            jobs = get_json(port, "/api/jobs?limit=5000")
        result = summarise(samples, seconds)
        states = {j["state"] for j in jobs["jobs"]}
        result.update({
            "clients": args.clients, "workers": args.workers, "endpoints": paths,
            "score_jobs_submitted": len(submitted), "score_jobs": jobs["counts"],
            "window_with_a_job_running": busy_polls / max(polls, 1),
            "failed_jobs": [j["error"] for j in jobs["jobs"] if j["state"] == "failed"],
            "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count(),
                        "platform": platform.platform()},
        })
    print(json.dumps({k: v for k, v in result.items() if k != "per_endpoint"}, indent=1))
    print("per endpoint (n, p50 ms, p99 ms):")
    for path, s in result["per_endpoint"].items():
        print(f"  {path:<60} {s['n']:>6} {s['p50_ms']:>8.1f} {s['p99_ms']:>8.1f}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    bad = result["failed"] or "failed" in states
    if bad:
        print(f"FAILED: {result['failed']} failed request(s); failed jobs: {result['failed_jobs']}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
