"""DCI's exact gradient-boosting fit: scikit-learn's sequential fit against the parallel one.

Both fit the same ``GradientBoostingClassifier`` per factor (dlib's defaults) on the same
codes and rows; the parallel fit builds the factors' models and the trees of each boosting
stage in threads with the random states placed as the sequential fit places them
(:mod:`dis_eval.metrics.parallel_boosting`). The script checks that importance matrices and
accuracies are identical (``==``) and reports the speed-up. Optionally it also times the
named approximate backend (``hist``) and measures its difference from the reference scores.

Codes: the noisy linear mix of the factors that benchmarks/bench_metrics.py uses (10 latents,
full dSprites factor grid, no images needed); rows drawn as DCI draws them (seed 0).

    # the figure for BENCHMARKS.md: dlib's DCI defaults, 2 threads, pinned to 2 cores
    taskset -c 0,1 python benchmarks/bench_dci.py --threads 2 --out bench_dci_2core.json
    # hist's difference from the reference on several code sets (slow: 2 exact fits each)
    python benchmarks/bench_dci.py --threads 2 --hist --codes mix,noisy,rotation,duplicated
    # quick sanity run (tiny sizes: threads give nothing here, it only checks identity)
    python benchmarks/bench_dci.py --num-train 200 --num-test 100 --threads 2

Target: parallel >= 1.8x faster than sequential on 2 cores at num_train 10,000 / num_test 5,000.
One sequential fit there takes several minutes on 2 cores (dlib's DCI at 10,000: 8-10 min).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dis_eval.data import GroundTruthData  # noqa: E402
from dis_eval.encode import EncodedData, representation  # noqa: E402
from dis_eval.metrics.dci import DEFAULTS, GBT_PARAMS, completeness, disentanglement, fit_factors  # noqa: E402
from dis_eval.metrics.parallel_boosting import fit_with_scikit_learn  # noqa: E402
from dis_eval.metrics.utils import train_test_codes  # noqa: E402

CODE_SETS = ("mix", "factors", "noisy", "rotation", "duplicated")


def make_codes(kind: str, data: GroundTruthData) -> np.ndarray:
    """Codes of every grid row: ``mix`` is bench_metrics' synthetic mix (10 latents)."""
    f = data.classes.astype(np.float64)
    z = (f - f.mean(axis=0)) / f.std(axis=0)
    rs = np.random.RandomState(0)
    if kind == "mix":
        from benchmarks.bench_metrics import synthetic_codes  # imports torch: only when asked

        return synthetic_codes(data)
    if kind == "factors":
        return f
    if kind == "noisy":
        return z + 0.1 * rs.randn(*z.shape)
    if kind == "rotation":
        return z @ np.linalg.qr(rs.randn(5, 5))[0]
    if kind == "duplicated":
        return np.concatenate([f, f[:, [0, 2]]], axis=1)
    raise SystemExit(f"unknown code set {kind!r}; choose from {', '.join(CODE_SETS)}")


def scores(imp: np.ndarray, train: np.ndarray, test: np.ndarray) -> dict[str, float]:
    return {"disentanglement": disentanglement(imp), "completeness": completeness(imp),
            "informativeness_train_accuracy": float(np.mean(train)),
            "informativeness_test_accuracy": float(np.mean(test))}


def timed(rows: tuple, backend: str, n_jobs: int) -> tuple[float, tuple]:
    t = time.perf_counter()
    out = fit_factors(*rows, backend=backend, n_jobs=n_jobs)
    return time.perf_counter() - t, out


def timed_scikit_learn(rows: tuple) -> tuple[float, tuple]:
    """scikit-learn's own sequential fit, one factor after another (disentanglement_lib's way)."""
    codes, factors, codes_test, factors_test = rows
    t = time.perf_counter()
    out, info = fit_with_scikit_learn(GBT_PARAMS, codes, list(factors.T), codes_test, list(factors_test.T))
    dt = time.perf_counter() - t
    return dt, (np.stack([o.importance for o in out], axis=1), np.array([o.train_accuracy for o in out]),
                np.array([o.test_accuracy for o in out]), info)


def bench(kind: str, args: argparse.Namespace, data: GroundTruthData) -> dict[str, Any]:
    settings = dict(DEFAULTS, num_train=args.num_train, num_test=args.num_test)
    rows = train_test_codes(data, representation(EncodedData(make_codes(kind, data))),
                            np.random.RandomState(args.seed), settings)
    row: dict[str, Any] = {"codes": kind, "num_train": args.num_train, "num_test": args.num_test,
                           "threads": args.threads}
    seq_t, par_t, one_t = [], [], []
    for _ in range(args.repeats):  # interleaved, so that load drifts hit both alike
        t, seq = timed_scikit_learn(rows)
        seq_t.append(t)
        t, par = timed(rows, "gbt", args.threads)
        par_t.append(t)
        identical = all(np.array_equal(a, b) for a, b in zip(seq[:3], par[:3], strict=True))
        if not identical:
            raise SystemExit(f"{kind}: the parallel fit differs from the sequential fit")
        if args.one_thread:
            t, one = timed(rows, "gbt", 1)
            one_t.append(t)
            if not all(np.array_equal(a, b) for a, b in zip(seq[:3], one[:3], strict=True)):
                raise SystemExit(f"{kind}: the one-thread direct fit differs from the sequential fit")
    row.update(sequential_s=seq_t, parallel_s=par_t, parallel_mode=par[3].mode, trees=par[3].trees,
               speedup=float(np.median(seq_t) / np.median(par_t)), identical=True,
               reference=scores(*seq[:3]))
    if one_t:
        row.update(one_thread_s=one_t, one_thread_speedup=float(np.median(seq_t) / np.median(one_t)))
    if args.hist:
        t, hist = timed(rows, "hist", args.threads)
        h = scores(*hist[:3])
        row.update(hist_s=t, hist=h, hist_minus_reference={k: h[k] - row["reference"][k] for k in h})
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num-train", type=int, default=DEFAULTS["num_train"])
    ap.add_argument("--num-test", type=int, default=DEFAULTS["num_test"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1,
                    help="sequential/parallel pairs, interleaved (the median is reported)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--codes", default="mix", help=f"comma-separated, from {', '.join(CODE_SETS)}")
    ap.add_argument("--one-thread", action="store_true",
                    help="also time this project's fit on one thread (direct trees, no threads)")
    ap.add_argument("--hist", action="store_true", help="also time backend=hist and its difference")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    import sklearn

    data = GroundTruthData.grid()
    t0 = time.perf_counter()
    body: dict[str, Any] = {"rows": [bench(k, args, data) for k in args.codes.split(",") if k]}
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    body.update(wall_s=time.perf_counter() - t0, load_average=os.getloadavg(),
                machine={"cpu": platform.processor() or platform.machine(), "cpus_usable": affinity,
                         "cpus_total": os.cpu_count()},
                versions={"python": platform.python_version(), "numpy": np.__version__,
                          "scikit-learn": sklearn.__version__})
    for r in body["rows"]:
        print(f"{r['codes']}: sequential {np.median(r['sequential_s']):.1f} s, parallel "
              f"({r['threads']} threads) {np.median(r['parallel_s']):.1f} s, x{r['speedup']:.2f}, identical"
              + (f"; one thread {np.median(r['one_thread_s']):.1f} s, x{r['one_thread_speedup']:.2f}"
                 if "one_thread_s" in r else ""))
    if args.out:
        Path(args.out).write_text(json.dumps(body, indent=2))


if __name__ == "__main__":
    main()
