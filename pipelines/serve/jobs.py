"""What a job is: its parameters, validated once when it is submitted, and the ``dis-eval``
command lines a worker runs for it.

Every job runs the project's own commands (``dis-eval train``, ``evaluate``, ``score``,
``sweep``) in a child process, so a job does exactly what the command line does. Parameters
name things the server already has (a config or sweep in ``pipelines/configs``, a run below
the root, an uploaded file the API stored); nothing a client sends is a path outside the root
or code to run.

```
POST /api/jobs {"kind": "train",    "params": {"config": "tiny_cpu", "overrides": {"beta": 4}, "name": "my-run"}}
POST /api/jobs {"kind": "evaluate", "params": {"run": "my-run", "metrics": ["mig"], "preset": "dlib",
                                                "set": ["mig.num_train=1000"], "seed": 0}}
POST /api/jobs {"kind": "sweep",    "params": {"sweep": "table2_cpu_small", "name": "t2small", "jobs": 2}}
```
Score jobs come from ``POST /api/submissions`` (``pipelines.serve.uploads``).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from dis_eval.errors import UserError
from pipelines.serve.settings import SERVICE_DIR, ServeSettings

CONFIGS_DIR = Path(__file__).resolve().parents[1] / "configs"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=-]*(/[A-Za-z0-9][A-Za-z0-9._=-]*)*$")
SUBMITTABLE: tuple[str, ...] = ("train", "evaluate", "sweep")  # POST /api/jobs; score: POST /api/submissions


def config_names() -> list[str]:
    """The configs and sweep files a job may name (``pipelines/configs/*.yaml`` stems)."""
    return sorted(p.stem for p in CONFIGS_DIR.glob("*.yaml"))


def _config_file(name: Any, what: str) -> Path:
    if not isinstance(name, str) or name not in config_names():
        raise UserError(f"{what} must be one of {', '.join(config_names())}, got {name!r}")
    return CONFIGS_DIR / f"{name}.yaml"


def run_folder_name(name: Any, what: str = "name") -> str:
    """A folder name below the root: letters, digits, ``._=-`` and ``/`` between parts; no
    ``..``, no absolute path, not the service's own folder."""
    if not isinstance(name, str) or not NAME_RE.match(name) or ".." in PurePosixPath(name).parts:
        raise UserError(f"{what} must be a relative folder name (letters, digits, ._=- and /), got {name!r}")
    if PurePosixPath(name).parts[0] == SERVICE_DIR:
        raise UserError(f"{what} {name!r} is the service's own folder")
    return name


def _str_list(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v and not v.startswith("-") for v in value):
        raise UserError(f"{what} must be a list of strings, got {value!r}")
    return value


def _scalar_overrides(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, dict):
        raise UserError(f"overrides must be an object {{key: value}}, got {value!r}")
    out = []
    for key, v in value.items():
        if not isinstance(key, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_.]*$", key):
            raise UserError(f"override key {key!r} is not a config key")
        if not (v is None or isinstance(v, (str, int, float, bool))):
            raise UserError(f"override {key} must be a number, string, boolean or null, got {v!r}")
        text = "null" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
        if "\n" in text:
            raise UserError(f"override {key} holds a line break")
        out.append(f"{key}={text}")
    return out


def _known(params: dict[str, Any], allowed: set[str], kind: str) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise UserError(f"{kind} job: unknown parameter(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


@dataclass(frozen=True)
class Scoring:
    """The scoring options of ``evaluate`` and ``score`` (validated by ``EvalConfig``)."""

    metrics: tuple[str, ...] = ()
    preset: str | None = None
    representation: str | None = None
    seed: int = 0
    repeats: int = 1
    settings: tuple[str, ...] = ()

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Scoring:
        from dis_eval.config.evaluation import EvalConfig

        metrics = tuple(_str_list(params.get("metrics"), "metrics"))
        sets = tuple(_str_list(params.get("set"), "set"))
        seed, repeats = params.get("seed", 0), params.get("repeats", 1)
        if not isinstance(seed, int) or isinstance(seed, bool) or not isinstance(repeats, int) or repeats < 1:
            raise UserError(f"seed must be an integer and repeats a positive integer, got {seed!r}, {repeats!r}")
        for key in ("preset", "representation"):
            if params.get(key) is not None and not isinstance(params[key], str):
                raise UserError(f"{key} must be a string")
        scoring = cls(metrics=metrics, preset=params.get("preset"), representation=params.get("representation"),
                      seed=seed, repeats=repeats, settings=sets)
        # the same validation as the command line's (bad metric names, settings, presets)
        EvalConfig(metrics=metrics or None, representation=scoring.representation, seed=seed, repeats=repeats,
                   settings=EvalConfig.settings_from_overrides(list(sets)), preset=scoring.preset).resolved()
        return scoring

    def argv(self) -> list[str]:
        out = ["--seed", str(self.seed), "--repeats", str(self.repeats)]
        if self.metrics:
            out += ["--metrics", ",".join(self.metrics)]
        if self.preset:
            out += ["--preset", self.preset]
        if self.representation:
            out += ["--representation", self.representation]
        for s in self.settings:
            out += ["--set", s]
        return out

    @classmethod
    def from_stored(cls, params: dict[str, Any]) -> Scoring:
        """From ``to_params()`` (already validated when the job was submitted)."""
        return cls(metrics=tuple(params["metrics"]), preset=params["preset"], representation=params["representation"],
                   seed=params["seed"], repeats=params["repeats"], settings=tuple(params["set"]))

    def to_params(self) -> dict[str, Any]:
        return {"metrics": list(self.metrics), "preset": self.preset, "representation": self.representation,
                "seed": self.seed, "repeats": self.repeats, "set": list(self.settings)}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipelines.cli", *args]


def parse_train(params: dict[str, Any], settings: ServeSettings) -> dict[str, Any]:
    from dis_eval.config.train import TrainConfig

    _known(params, {"config", "overrides", "name"}, "train")
    config = _config_file(params.get("config"), "config")
    overrides = _scalar_overrides(params.get("overrides"))
    cfg = TrainConfig.load(config, overrides)  # the same validation as `dis-eval train`
    name = run_folder_name(params.get("name") or f"{cfg.model}-s{cfg.seed}-{_stamp()}")
    if (settings.root / name).exists():
        raise UserError(f"{name} already exists below the root; choose another name")
    return {"config": config.stem, "overrides": dict(params.get("overrides") or {}), "name": name}


def parse_evaluate(params: dict[str, Any], settings: ServeSettings) -> dict[str, Any]:
    from pipelines.serve.catalog import resolve_run

    _known(params, {"run", "metrics", "preset", "representation", "seed", "repeats", "set", "protocol"}, "evaluate")
    resolve_run(settings.root, str(params.get("run", "")))
    protocol = params.get("protocol")
    from dis_eval.config.evaluation import PROTOCOLS

    if protocol is not None and protocol not in PROTOCOLS:
        raise UserError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    return {"run": params["run"], "protocol": protocol, **Scoring.from_params(params).to_params()}


def parse_sweep(params: dict[str, Any], settings: ServeSettings) -> dict[str, Any]:
    from pipelines.sweep.spec import load_sweep

    _known(params, {"sweep", "name", "jobs"}, "sweep")
    sweep = _config_file(params.get("sweep"), "sweep")
    load_sweep(sweep)  # the same validation as `dis-eval sweep`
    jobs = params.get("jobs", 1)
    if not isinstance(jobs, int) or isinstance(jobs, bool) or not 1 <= jobs <= 64:
        raise UserError(f"jobs must be an integer 1-64, got {jobs!r}")
    name = run_folder_name(params.get("name") or sweep.stem)
    return {"sweep": sweep.stem, "name": name, "jobs": jobs}


PARSERS = {"train": parse_train, "evaluate": parse_evaluate, "sweep": parse_sweep}


def parse_job_request(body: Any, settings: ServeSettings, pending: Sequence[Any] = ()) -> tuple[str, dict[str, Any]]:
    """``{"kind": ..., "params": {...}}`` from a client -> (kind, validated params). ``pending``:
    the jobs not finished yet (a train job may not name a folder another one will make)."""
    if not isinstance(body, dict) or not isinstance(body.get("params", {}), dict):
        raise UserError("the body must be {\"kind\": \"train\" | \"evaluate\" | \"sweep\", \"params\": {...}}")
    kind = body.get("kind")
    if kind not in PARSERS:
        raise UserError(f"kind must be one of {', '.join(SUBMITTABLE)} (score jobs: POST /api/submissions), got {kind!r}")
    params = PARSERS[kind](body.get("params") or {}, settings)
    if kind in ("train", "sweep"):
        taken = [j.id for j in pending if j.kind in ("train", "sweep") and j.params.get("name") == params["name"]]
        if taken:
            raise UserError(f"job {taken[0]} already writes {params['name']}; choose another name")
    return kind, params


def _stamp() -> str:
    import time

    return time.strftime("%Y%m%d-%H%M%S")


def job_steps(kind: str, params: dict[str, Any], settings: ServeSettings, job_id: str,
              attempt: int = 1) -> list[list[str]]:
    """The command lines of attempt ``attempt`` of a job, run in order (each in its own process).

    A train job's later attempt (its earlier worker died) resumes the run its first attempt
    started, from the checkpoint: ``dis-eval train --resume``; a first attempt never takes over
    a folder it did not make. A sweep re-run skips finished jobs and resumes interrupted ones
    by itself.
    """
    from dis_eval.run_dir import RunDir

    if kind == "train":
        run = RunDir(settings.root / params["name"])
        if run.is_run():
            if attempt <= 1:
                raise UserError(f"{params['name']} already holds a run that this job did not start")
            return [_cli("train", "--resume", str(run.path), "--quiet")]
        overrides = _scalar_overrides(params.get("overrides"))
        return [_cli("train", str(CONFIGS_DIR / f"{params['config']}.yaml"), *overrides, "--out", str(run.path),
                     "--quiet")]
    if kind == "evaluate":
        scoring = Scoring.from_stored(params)
        extra = ["--protocol", params["protocol"]] if params.get("protocol") else []
        return [_cli("evaluate", str(settings.root / params["run"]), *scoring.argv(), *extra)]
    if kind == "sweep":
        return [_cli("sweep", str(CONFIGS_DIR / f"{params['sweep']}.yaml"), "--out",
                     str(settings.root / params["name"]), "--jobs", str(params["jobs"]))]
    if kind == "score":
        from pipelines.serve.uploads import score_steps

        return score_steps(params, settings, job_id)
    raise UserError(f"unknown job kind {kind!r}")


def job_result(kind: str, params: dict[str, Any], settings: ServeSettings, job_id: str) -> dict[str, Any]:
    """What a finished job produced (stored with the job): the run and its status or scores."""
    from dis_eval.run_dir import RunDir

    if kind == "train":
        summary = RunDir(settings.root / params["name"]).read_summary() or {}
        return {"run": params["name"], "status": summary.get("status"), "step": summary.get("step")}
    if kind == "evaluate":
        metrics = RunDir(settings.root / params["run"]).read_metrics() or {}
        return {"run": params["run"], "headline": metrics.get("headline")}
    if kind == "sweep":
        return {"out": params["name"]}
    if kind == "score":
        from pipelines.serve.uploads import finish_submission

        return finish_submission(params, settings, job_id)
    raise UserError(f"unknown job kind {kind!r}")
