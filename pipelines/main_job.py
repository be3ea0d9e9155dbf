"""The main job: every stage end to end on built-in defaults (``MainJobDefaults``) into one
folder, the data loaded once and passed to each stage; ``dis-eval main`` (pipelines/cli/main_job.py)
runs it."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dis_eval.atomic import atomic_write_json, atomic_write_text, remove_temporaries
from dis_eval.errors import UserError
from dis_eval.run_dir import RunDir

DEFAULT_OUT = "dis-eval-output"


@dataclass
class MainJobDefaults:
    """Every default of the main job, in one place (sized for ~15 min on a 2-core CPU)."""

    out: str = DEFAULT_OUT
    data: str | None = None  # None: render the full set into OUT/data
    subset: str | None = "authors"  # the Echo authors' dependent subset (seed 42, 8 bins, drop 0.15)
    models: tuple[tuple[str, str, float], ...] = (("echo", "echo", 1.0), ("beta_vae", "vae", 1.0))  # (model, label, beta)
    # Batches per model (CPU: ~110 ms a batch of 64). Echo at beta 1 spends its first ~2,000
    # steps with every latent at the rate floor -log r before latents switch on (measured:
    # rate 2.72 nats until step 2,000, 15 nats by step 3,000), so fewer steps show nothing.
    steps: int = 3000
    batch_size: int = 64
    latents: int = 10
    lr: float = 1e-4
    seed: int = 0
    device: str = "auto"
    # Scoring: every metric but DCI (8-10 min per model on this CPU), study defaults.
    metrics: tuple[str, ...] = ("factor_vae", "mig", "beta_vae", "sap", "modularity_explicitness",
                                "irs", "unsupervised")
    metric_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    representation: str | None = None  # None: both conventions side by side (EvalConfig.plan)
    plot_rows: int | None = None  # None: every row of the subset for Fig. 4 and the traversal ranges
    plot_seed_images: int = 3  # traversal seed images (one per shape)
    plot_traversal_values: int = 9
    plot_noise_draws: int = 10  # reconstructions averaged over noise draws (the paper's Sec. 5.2)


def quick(defaults: MainJobDefaults) -> MainJobDefaults:
    """A smoke-test version: few steps, small batches, small metric samples (scores not meaningful)."""
    n = 400
    small = {"factor_vae": {"num_train": n, "num_eval": n // 2, "num_variance_estimate": n},
             "mig": {"num_train": n}, "beta_vae": {"num_train": n, "num_eval": n // 2},
             "sap": {"num_train": n, "num_test": n // 2},
             "modularity_explicitness": {"num_train": n, "num_test": n // 2},
             "irs": {"num_train": n}, "unsupervised": {"num_train": n}}
    metrics = ("factor_vae", "mig")
    return dataclasses.replace(defaults, steps=min(defaults.steps, 30), batch_size=16,
                               metrics=metrics, metric_settings={m: small[m] for m in metrics},
                               plot_seed_images=1, plot_traversal_values=5, plot_noise_draws=3)


class _Stage:
    """Prints ``[k/N] name ...`` and the seconds it took."""

    def __init__(self, total: int) -> None:
        self.total, self.k, self.t_job = total, 0, time.perf_counter()
        self.timings: dict[str, float] = {}

    def __call__(self, name: str) -> _Stage:
        self.k += 1
        self.name = name
        print(f"\n[{self.k}/{self.total}] {name} ...", flush=True)
        self.t0 = time.perf_counter()
        return self

    def __enter__(self) -> _Stage:
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        dt = time.perf_counter() - self.t0
        self.timings[self.name] = round(dt, 1)
        if exc_type is None:
            print(f"    done in {dt:.1f}s (total {time.perf_counter() - self.t_job:.0f}s)", flush=True)


def run_main_job(d: MainJobDefaults) -> dict[str, Any]:
    """Run every stage; returns a manifest of what was written where."""
    from data_prep.prepare import DspritesSource, SubsetRequest, prepare_dependent, prepare_dsprites
    from dis_eval.config.evaluation import EvalConfig
    from dis_eval.config.train import TrainConfig
    from dis_eval.data import DataSpec, load_data
    from dis_eval.data.dependent import PRESETS as SUBSET_PRESETS
    from dis_eval.data.spec import PREPARED_NAME
    from dis_eval.device import resolve_device
    from pipelines.compare import compare_runs
    from pipelines.evaluate import evaluate_run
    from pipelines.evaluate.scoring import warning_lines
    from pipelines.figures import PlotSettings, make_run_figures
    from pipelines.train import train

    out = Path(d.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    remove_temporaries(out)  # manifest/README temporaries of a killed earlier run (a dead writer's only)
    data_dir, runs_dir, cmp_dir = out / "data", out / "runs", out / "comparison"
    device = str(resolve_device(d.device))
    stage = _Stage(5)
    manifest: dict[str, Any] = {"out": str(out), "device": device, "settings": _jsonable(dataclasses.asdict(d))}

    with stage("prepare data"):
        if d.data is not None:
            source = Path(d.data).resolve()
            if not source.is_file():
                raise UserError(f"--data {d.data} not found; give an official-format .npz/.hdf5 or leave it out to render")
            print(f"    using {source} as the image source (not copied)")
        else:
            source = data_dir / PREPARED_NAME
            if source.is_file():
                print(f"    reusing {source} (delete it to render again)")
            else:
                prepare_dsprites(source, DspritesSource(render=True), progress=sys.stderr.isatty())
        subset_path: str | None = None
        if d.subset is not None:
            if d.subset in SUBSET_PRESETS:
                sub = prepare_dependent(data_dir / f"dependent_{d.subset}.h5", SubsetRequest(preset=d.subset),
                                        progress=False)
                subset_path = str(data_dir / f"dependent_{d.subset}.h5")
                manifest["subset"] = {"recipe": sub.recipe.describe(), "kept_fraction": sub.kept_fraction,
                                      "total_correlation_nats": sub.total_correlation, "file": subset_path}
            else:
                subset_path = d.subset
        data = load_data(DataSpec(str(source), subset_path), device=device)
        print(f"    training/scoring data: {len(data):,} rows"
              + (f" of the dependent subset {data.info.get('subset')}" if subset_path else " (full set)"))
        manifest["data"] = {"source": str(source), "subset": subset_path, "rows": len(data)}

    # The data is loaded once, on the training device, and passed to every stage below.
    run_dirs: list[Path] = []
    with stage(f"train {len(d.models)} models x {d.steps} steps"):
        for model, label, beta in d.models:
            run_dir = runs_dir / f"{label}_beta{beta:g}_seed{d.seed}"
            if run_dir.exists():
                shutil.rmtree(run_dir)  # a fresh run: the main job never mixes old and new results
            cfg = TrainConfig.from_dict({
                "model": model, "beta": beta, "latents": d.latents, "data": str(source), "subset": subset_path,
                "steps": d.steps, "batch_size": d.batch_size, "lr": d.lr, "seed": d.seed, "device": device,
                "checkpoint_every": max(1, d.steps // 2), "log_every": max(1, min(100, d.steps // 5)),
            })
            t0 = time.perf_counter()
            print(f"    training {label} (model={model}, beta={beta:g}) -> {run_dir}", flush=True)
            train(cfg, run_dir, progress=sys.stderr.isatty(), data=data)  # a live bar in a terminal, quiet in logs
            summary = RunDir(run_dir).read_summary() or {}
            print(f"    {label}: {summary.get('status')} after {summary.get('step')} steps in "
                  f"{time.perf_counter() - t0:.0f}s; final losses {_fmt(summary.get('final_losses'))}")
            floor = _echo_rate_floor(run_dir)
            if floor is not None:
                print(f"    warning: every Echo latent is still at the rate floor -log r = {floor:.4f} nats: "
                      "the model transmits almost nothing yet; train longer (--steps) before reading its scores")
            run_dirs.append(run_dir)

    codes_used = _codes_used(d)
    with stage("score (protocol: subset rows, " + f"{codes_used}; metrics: {', '.join(d.metrics)})"):
        eval_config = EvalConfig(metrics=d.metrics, representation=d.representation,
                                 protocol="subset" if subset_path else None, seed=d.seed,
                                 settings=d.metric_settings, device=device)
        for run_dir in run_dirs:
            result = evaluate_run(run_dir, eval_config, data=data)
            for name, rec in (result.get("protocols") or {"": result}).items():
                heads = ", ".join(f"{k} {v:.3f}" for k, v in rec["headline"].items() if isinstance(v, float))
                print(f"    {run_dir.name}{f' [{name}]' if name else ''}: {heads}")
            for line in warning_lines(result):
                print(f"    {line}")
        if d.metric_settings:
            print("    reduced sample counts (quick mode): " + json.dumps(d.metric_settings))

    figures: dict[str, list[str]] = {}
    with stage("figures"):
        for run_dir in run_dirs:
            paths = make_run_figures(run_dir, device=device, data=data,
                                     settings=PlotSettings(rows=d.plot_rows, seed=d.seed,
                                                           seed_images=d.plot_seed_images,
                                                           traversal_values=d.plot_traversal_values,
                                                           noise_draws=d.plot_noise_draws),
                                     log=lambda m: print("  " + m))
            figures[run_dir.name] = [str(p) for p in paths]
            print(f"    {run_dir.name}: {len(paths)} files in {run_dir / 'figures'}")

    with stage("compare"):
        outputs = compare_runs([runs_dir], cmp_dir, scores=None, log=lambda m: print("    " + m.replace("\n", "\n    ")))

    manifest.update({"runs": [str(r) for r in run_dirs], "figures": figures,
                     "comparison": {k: str(v) for k, v in outputs.files.items()},
                     "missing": outputs.missing, "timings_s": stage.timings,
                     "total_s": round(time.perf_counter() - stage.t_job, 1)})
    atomic_write_json(out / "manifest.json", manifest)
    atomic_write_text(out / "README.txt", _readme(d, manifest, run_dirs, subset_path))
    _where(out, manifest, run_dirs)
    return manifest


def _echo_rate_floor(run_dir: Path) -> float | None:
    """-log r when every latent of an Echo run sits at the rate floor (within 1e-3 nats), else None."""
    run = RunDir(run_dir)
    clip = run.read_config().model_spec.echo_clip
    rates = (run.read_summary() or {}).get("rate_per_dim") or []
    if clip is None or not rates:
        return None
    floor = -math.log(clip)
    return floor if all(abs(r - floor) < 1e-3 for r in rates) else None


def _fmt(losses: Any) -> str:
    if not isinstance(losses, dict):
        return str(losses)
    return ", ".join(f"{k} {v:.1f}" for k, v in losses.items() if isinstance(v, (int, float)))


def _jsonable(x: Any) -> Any:
    return json.loads(json.dumps(x, default=str))


def _codes_used(d: MainJobDefaults) -> str:
    return f"{d.representation} codes" if d.representation else "mean codes (dlib) + noisy sample on the full grid (paper)"


def _readme(d: MainJobDefaults, m: dict[str, Any], run_dirs: list[Path], subset: str | None) -> str:
    import textwrap

    from dis_eval.reference.results import load_reference
    from dis_eval.reference.three_way import short_run_explanation

    sub = m.get("subset", {})
    lines = [
        "dis-eval main job output",
        "========================",
        "",
        f"Made by `dis-eval main` in {m['total_s']:.0f} s on {m['device']}. Settings: manifest.json.",
        "",
        "What was done",
        f"- data/: the full dSprites set ({'rendered on this machine, not the official file' if d.data is None else 'from ' + str(d.data)})"
        + (f" and the dependent subset {sub.get('recipe', subset)} (kept fraction {sub.get('kept_fraction', float('nan')):.3f}, "
           f"total correlation {sub.get('total_correlation_nats', float('nan')):.2f} nats)" if subset else ""),
        f"- runs/: {len(run_dirs)} models trained for {d.steps} batches of {d.batch_size} on "
        f"{m['data']['rows']:,} rows ({'the dependent subset' if subset else 'the full set'}) - far shorter than the "
        "paper's 300,000 steps, so scores are a demonstration, not a reproduction of Table 2.",
        f"- scores: metrics.json in each run: {', '.join(d.metrics)} on the subset's own rows (protocol 'subset'), "
        f"{_codes_used(d)}, disentanglement_lib study sample counts"
        + (" REDUCED (quick mode)" if d.metric_settings else "") + "; DCI is left out (8-10 min per model on a CPU;"
        " run `dis-eval evaluate RUN --metrics dci`).",
        "",
        "Where to look",
    ]
    for r in run_dirs:
        lines += [
            f"- runs/{r.name}/",
            "    config.yaml, summary.json (training), metrics.json (scores), tb/ (TensorBoard)",
            "    figures/latent_vs_factor.png|pdf   mean latent vs factor (the paper's Fig. 4): one row per active latent;",
            "                                       posX x posY heatmap (shared colour scale), mean vs scale and vs",
            "                                       orientation per shape (square blue, ellipse orange, heart green)",
            "    figures/mi_heatmap.png|pdf         MI(latent; factor) with MIG's estimator, top two per factor framed",
            "    figures/traversal_*.png|pdf|gif    latent traversals per seed image (rows: latents by rate)",
            f"    figures/reconstructions.png|pdf    inputs, mean-code reconstructions, average over {d.plot_noise_draws} noise draws",
        ]
    lines += [
        "- comparison/",
        "    scores.md|csv|tex     mean ± sd over seeds per configuration (one seed each here: values alone)",
        "    table2.md|csv|tex     the paper's Table 2 layout (rows: beta / lambda settings; columns: data set > score > model)",
        "    three_way.md|csv      per score and protocol: your runs, the reference runs at full length",
        "                          (mean ± sd over seeds, n) and the paper's value (the authors' protocol)",
        "    scores_by_config.png, score_vs_beta.png (and .pdf)",
        "    missing.txt           runs without scores (listed, never dropped)",
        "- manifest.json: every file written and the stage timings",
        "",
        "Why these scores differ from the full-length reference",
        textwrap.fill(short_run_explanation(d.steps), 100),
        f"Reference runs: {load_reference().describe()}.",
        "",
        "Next: more seeds and settings with `dis-eval sweep`, then `dis-eval compare DIR` for the tables.",
    ]
    return "\n".join(lines) + "\n"


def _where(out: Path, m: dict[str, Any], run_dirs: list[Path]) -> None:
    print("\n" + "=" * 72)
    print(f"done in {m['total_s']:.0f}s. Everything is under {out}")
    print("  README.txt                    what each file is")
    print(f"  data/                         {m['data']['source'] if m['data']['source'].startswith(str(out)) else 'subset file (images from ' + m['data']['source'] + ')'}")
    for r in run_dirs:
        rel = r.relative_to(out)
        print(f"  {str(rel) + '/':30s}model, config.yaml, metrics.json")
        print(f"  {str(rel / 'figures') + '/':30s}latent_vs_factor (Fig. 4), mi_heatmap, traversal_*, reconstructions")
    cmp_md = m["comparison"].get("md")
    print(f"  {'comparison/':30s}scores.md/.csv/.tex, table2.md/.csv/.tex, score plots")
    if cmp_md:
        print(f"  table: {cmp_md}")
    if m["comparison"].get("three_way_md"):
        print(f"  yours / reference / paper: {m['comparison']['three_way_md']}")
    if m["missing"]:
        print("  runs missing scores: " + "; ".join(m["missing"]))
    print("=" * 72, flush=True)
