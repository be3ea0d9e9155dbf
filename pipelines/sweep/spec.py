"""Sweep files: one YAML file read into a ``SweepSpec`` and expanded into ``Job`` objects.

A sweep file describes many runs at once (this example is a valid file: the tests expand it)::

    name: echo_beta_lambda
    base: echo.yaml                 # a train config: a path relative to this file, a shipped
                                    # config (pipelines/configs/), or an inline mapping
    set: {steps: 100000}            # fixed overrides of the base, for every job
    include:                        # rows, each a small grid (a scalar is one value);
      - {model: echo, beta: [1, 2, 4]}            # every row is crossed with the grid
      - {model: echo_tc, beta: 1, lambda: [10, 20]}
    grid:                           # cartesian product, key -> list of values
      dataset:                      # a mapping is a set of *named alternatives*:
        full: {subset: null}        #   each name sets one or more keys
        dependent: {subset: authors}
      seed: [0, 1, 2]
    evaluation: {preset: paper, metrics: [factor_vae, mig]}
    notes: "lambda 10 and 20 are picks (printed when the sweep runs)"

``set:``, ``grid:`` and ``include:`` take the training config's keys, exactly as
``dis-eval train CONFIG key=value`` does (``dis_eval.config.train.TrainConfig``); every job's
config is resolved and validated before anything runs, so a bad value fails the whole sweep
with one line. Jobs whose resolved configs coincide run once. ``evaluation:`` takes the keys
of ``dis_eval.config.evaluation.EvalConfig``, checked by it, the same as everywhere else; a
preset fills what the block leaves open, and every job records the result (see
:meth:`SweepSpec.job_evaluation`).

A job's run folder is named from the settings the file declares as swept (include and grid
keys, in the order the file declares them), e.g. ``model=echo__beta=1__dataset=full__seed=0``:
stable when lists grow, filesystem-safe, unique.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dis_eval.config.evaluation import EvalConfig
from dis_eval.errors import UserError

SWEEP_KEYS = ("name", "description", "base", "set", "grid", "include", "evaluation", "notes")
SHIPPED_CONFIGS = Path(__file__).resolve().parents[1] / "configs"
MAX_NAME_LEN = 200

# Resolves (base config mapping, {key: value} overrides) into a complete, validated
# training config as a plain dict; raises UserError on bad keys or values.
Resolver = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]
# A grid: ordered axes, each a list of alternatives (label, {config key: value}).
Axes = list[tuple[str, list[tuple[str, dict[str, Any]]]]]


@dataclass(frozen=True)
class Job:
    """One run of a sweep: its folder name, declared settings, resolved config, scoring."""

    name: str
    settings: dict[str, Any]  # the swept key -> value (named alternatives by their name)
    train_config: dict[str, Any]  # complete resolved training config (TrainConfig.to_dict())
    evaluation: dict[str, Any]  # the resolved EvalConfig's as_dict() (see SweepSpec.job_evaluation)

    @property
    def fingerprint(self) -> str:
        return config_fingerprint(self.train_config, self.evaluation)

    def eval_config(self) -> EvalConfig:
        """The job's evaluation, typed (validated again: a job may come from a saved file)."""
        return EvalConfig.from_dict(self.evaluation, where=f"job {self.name}, evaluation")

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "settings": self.settings,
            "train_config": self.train_config,
            "evaluation": self.evaluation,
            "fingerprint": self.fingerprint,
        }


@dataclass
class SweepSpec:
    """A parsed sweep file (before job expansion)."""

    name: str
    source: Path | None
    base: dict[str, Any]
    fixed: dict[str, Any]
    grid: Axes
    include: list[Axes]  # rows, each a grid
    evaluation: EvalConfig  # as the file writes it (a preset not yet expanded)
    notes: str = ""
    description: str = ""
    raw: dict[str, Any] = field(default_factory=dict)
    key_order: list[str] = field(default_factory=list)  # swept keys in declaration order (names)

    def job_evaluation(self) -> dict[str, Any]:
        """What every job stores (``sweep_job.json``) and fingerprints: the evaluation resolved,
        a preset expanded into the metrics, representation, protocol and counts it stands for.
        A job then says what it computes without the code's presets, and a preset whose
        numbers change yields new fingerprints instead of reusing runs scored the old way.
        An evaluation that scores both conventions side by side (no preset, no representation:
        ``EvalConfig.plan``) is stored as chosen, so that the job still scores both."""
        if len(self.evaluation.plan()) > 1:
            return self.evaluation.as_dict()
        return self.evaluation.resolved().as_dict()


def config_fingerprint(train_config: Mapping[str, Any], evaluation: Mapping[str, Any]) -> str:
    """A short stable hash of what a job computes (used to refuse reusing a run dir for
    a different config)."""
    blob = json.dumps({"train": train_config, "eval": evaluation}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- loading


def find_sweep_file(path: str | Path) -> Path:
    """The sweep file at ``path``, or a shipped one by name (``table2`` / ``table2.yaml``)."""
    p = Path(path)
    if p.is_file():
        return p
    for cand in (SHIPPED_CONFIGS / p.name, SHIPPED_CONFIGS / f"{p.name}.yaml"):
        if not p.parent.parts and cand.is_file():
            return cand
    shipped = sorted(q.stem for q in SHIPPED_CONFIGS.glob("*.yaml")) if SHIPPED_CONFIGS.is_dir() else []
    raise UserError(
        f"sweep file {str(path)!r} not found (give a path, or one of the shipped configs: "
        f"{', '.join(shipped) or 'none'})"
    )


def _load_yaml(path: Path, what: str) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" (line {line + 1})" if line is not None else ""
        raise UserError(f"{what} {path} is not valid YAML{where}: fix its syntax") from None
    except OSError as exc:
        raise UserError(f"cannot read {what} {path}: {exc.strerror}") from None


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and check a sweep file (see the module docstring for the format)."""
    p = find_sweep_file(path)
    raw = _load_yaml(p, "sweep file")
    return parse_sweep(raw, source=p)


def parse_sweep(raw: Any, source: Path | None = None) -> SweepSpec:
    """Check a sweep mapping (as read from YAML); ``source`` anchors a relative ``base``."""
    where = f"sweep file {source}" if source else "sweep"
    if not isinstance(raw, dict):
        raise UserError(f"{where}: expected a mapping with keys {', '.join(SWEEP_KEYS)}")
    unknown = sorted(set(raw) - set(SWEEP_KEYS))
    if unknown:
        raise UserError(
            f"{where}: unknown key(s) {', '.join(map(str, unknown))}; allowed: {', '.join(SWEEP_KEYS)}"
        )
    if "base" not in raw:
        raise UserError(f"{where}: missing `base:` (a train config path or an inline mapping)")
    base = _load_base(raw["base"], source, where)
    fixed = raw.get("set") or {}
    if not isinstance(fixed, dict):
        raise UserError(f"{where}: `set:` must be a mapping of config key -> value")
    grid = _parse_grid(raw.get("grid") or {}, f"{where}: grid")
    include_raw = raw.get("include")
    include: list = []
    if include_raw is not None:
        if not isinstance(include_raw, list) or not include_raw:
            raise UserError(f"{where}: `include:` must be a non-empty list of mappings")
        for i, row in enumerate(include_raw):
            include.append(_parse_grid(row, f"{where}: include[{i}]", allow_scalars=True))
    axes = [k for k, _ in grid]
    for i, row in enumerate(include):
        both = sorted(set(axes) & {k for k, _ in row})
        if both:
            raise UserError(
                f"{where}: include[{i}] sets {', '.join(both)}, which the grid already sweeps; "
                "set each key in one place"
            )
    clash = sorted(_swept_keys(grid, include) & set(fixed))
    if clash:
        raise UserError(
            f"{where}: {', '.join(clash)} is both fixed under `set:` and swept; keep it in one place"
        )
    # Run names list swept keys in the order the file declares them (grid or include first,
    # whichever comes first), so `include: [{model, beta}]` before `grid: {seed}` reads
    # model=echo__beta=1__seed=0.
    key_order: list[str] = []
    blocks = [grid] if "include" not in raw else [grid, *include]
    if "include" in raw and "grid" in raw and list(raw).index("include") < list(raw).index("grid"):
        blocks = [*include, grid]
    for block in blocks:
        for axis, _ in block:
            if axis not in key_order:
                key_order.append(axis)
    name = raw.get("name") or (source.stem if source else "sweep")
    if not isinstance(name, str):
        raise UserError(f"{where}: `name:` must be a string")
    return SweepSpec(
        name=name,
        source=source,
        base=base,
        fixed=dict(fixed),
        grid=grid,
        include=include,
        evaluation=_parse_evaluation(raw.get("evaluation"), where),
        notes=str(raw.get("notes") or "").strip(),
        description=str(raw.get("description") or "").strip(),
        raw=raw,
        key_order=key_order,
    )


def _swept_keys(grid: Axes, include: list[Axes]) -> set[str]:
    """Every config key the grid or an include row sets."""
    return {key for block in (grid, *include) for _, alts in block for _, kv in alts for key in kv}


def _parse_evaluation(raw: Any, where: str) -> EvalConfig:
    """The ``evaluation:`` block, typed and validated by ``EvalConfig`` (absent: the defaults)."""
    if raw is not None and not isinstance(raw, Mapping):
        raise UserError(f"{where}: `evaluation:` must be a mapping, e.g. {{preset: paper, metrics: [mig]}}")
    return EvalConfig.from_dict(raw, where=f"{where}, evaluation")


def _load_base(base: Any, source: Path | None, where: str) -> dict[str, Any]:
    if isinstance(base, dict):
        return copy.deepcopy(base)
    if not isinstance(base, str):
        raise UserError(f"{where}: `base:` must be a train config path or an inline mapping")
    cands = []
    bp = Path(base)
    if bp.is_absolute():
        cands.append(bp)
    else:
        if source is not None:
            cands.append(source.parent / bp)
        cands += [SHIPPED_CONFIGS / bp, SHIPPED_CONFIGS / f"{base}.yaml", Path.cwd() / bp]
    for cand in cands:
        if cand.is_file():
            data = _load_yaml(cand, "base config")
            if not isinstance(data, dict):
                raise UserError(f"{where}: base config {cand} must be a mapping of config keys")
            return data
    raise UserError(
        f"{where}: base config {base!r} not found (looked beside the sweep file and in {SHIPPED_CONFIGS})"
    )


def _parse_grid(
    raw: Any, where: str, allow_scalars: bool = False
) -> Axes:
    """``{key: [values]}`` or ``{axis: {label: {key: value}}}`` -> ordered axes of alternatives."""
    if not isinstance(raw, dict):
        raise UserError(f"{where} must be a mapping of config key -> list of values")
    axes = []
    for key, values in raw.items():
        if not isinstance(key, str) or not key:
            raise UserError(f"{where}: keys must be config key names, got {key!r}")
        if isinstance(values, dict):
            if not values:
                raise UserError(f"{where}.{key}: an empty set of named alternatives")
            alts = []
            for label, kv in values.items():
                if not isinstance(kv, dict) or not kv:
                    raise UserError(
                        f"{where}.{key}.{label}: a named alternative must be a non-empty mapping "
                        "of config key -> value"
                    )
                alts.append((str(label), dict(kv)))
        elif isinstance(values, list):
            if not values:
                raise UserError(f"{where}.{key}: an empty list sweeps nothing; give at least one value")
            for v in values:
                if isinstance(v, (dict, list)):
                    raise UserError(
                        f"{where}.{key}: values must be scalars (use named alternatives for several keys)"
                    )
            alts = [(format_value(v), {key: v}) for v in values]
        elif allow_scalars:
            alts = [(format_value(values), {key: values})]
        else:
            raise UserError(
                f"{where}.{key} must be a list of values (or a mapping of named alternatives); "
                "put a fixed value under `set:`"
            )
        labels = [lab for lab, _ in alts]
        dup = sorted({lab for lab in labels if labels.count(lab) > 1})
        if dup:
            raise UserError(f"{where}.{key}: value(s) {', '.join(dup)} listed twice")
        axes.append((key, alts))
    return axes


# ----------------------------------------------------------------------------- naming


_SAFE = re.compile(r"[^A-Za-z0-9._+-]")


def format_value(value: Any) -> str:
    """A value as it appears in a run directory name (``1``, ``0.0001``, ``none``, ``true``)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # repr is the shortest exact form; 10.0 and 10 name the same setting.
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    return str(value)


def _safe_token(text: str) -> str:
    """Filesystem-safe, and still unique: a lossy clean-up gets a short hash of the original."""
    clean = _SAFE.sub("-", text).strip(".") or "x"
    if clean != text:
        clean = f"{clean}-{hashlib.sha256(text.encode()).hexdigest()[:6]}"
    return clean


def run_name(settings: Mapping[str, Any]) -> str:
    """``key=value`` pairs joined by ``__`` (a long name is cut and given a hash)."""
    if not settings:
        return "base"
    name = "__".join(f"{_safe_token(k)}={_safe_token(format_value(v))}" for k, v in settings.items())
    if len(name) > MAX_NAME_LEN:
        digest = hashlib.sha256(name.encode()).hexdigest()[:10]
        name = f"{name[: MAX_NAME_LEN - 12]}__{digest}"
    return name


# ----------------------------------------------------------------------------- expansion


def _expand(axes: Axes) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Yield (settings label per axis, merged overrides) for every combination of ``axes``."""
    for combo in itertools.product(*[alts for _, alts in axes]):
        labels: dict[str, Any] = {}
        overrides: dict[str, Any] = {}
        for (axis, _), (label, kv) in zip(axes, combo, strict=True):
            # A scalar axis keeps its value (so 1 stays an int in the manifest); a named
            # alternative is shown by its name.
            labels[axis] = kv[axis] if list(kv) == [axis] else label
            overrides.update(kv)
        yield labels, overrides


def expand_jobs(
    spec: SweepSpec,
    resolve: Resolver,
    extra_set: Mapping[str, Any] | None = None,
    merged: list[tuple[str, str]] | None = None,
) -> list[Job]:
    """Every job of ``spec``, each config resolved and validated by ``resolve``.

    The grid is crossed with each ``include`` row (or used alone without rows); settings
    that coincide are run once. ``extra_set`` (the command line's ``--set``) overrides the
    base for every job, and may not touch a swept key. Jobs whose resolved config equals
    an earlier one's are dropped and, when ``merged`` is given, listed there as
    ``(dropped name, kept name)``. Raises UserError naming the first
    job whose config is invalid, before anything runs.
    """
    fixed = dict(spec.fixed)
    if extra_set:
        clash = sorted(_swept_keys(spec.grid, spec.include) & set(extra_set))
        if clash:
            raise UserError(
                f"--set {', '.join(clash)}: swept by the sweep's grid/include; edit the sweep file instead"
            )
        fixed.update(extra_set)
    rows = spec.include or [[]]
    jobs: list[Job] = []
    seen: dict[str, Job] = {}
    by_fingerprint: dict[str, str] = {}
    evaluation = spec.job_evaluation()
    for row in rows:
        for grid_labels, grid_over in _expand(spec.grid):
            for row_labels, row_over in _expand(row):
                merged_labels = {**grid_labels, **row_labels}
                settings = {k: merged_labels[k] for k in spec.key_order if k in merged_labels}
                name = run_name(settings)
                if name in seen:
                    if seen[name].settings != settings:
                        raise UserError(
                            f"two different jobs would share run directory {name!r}; rename a value"
                        )
                    continue
                overrides = {**fixed, **grid_over, **row_over}
                try:
                    config = resolve(copy.deepcopy(spec.base), overrides)
                except UserError as exc:
                    raise UserError(f"sweep {spec.name!r}, job {name}: {exc}") from None
                job = Job(name=name, settings=settings, train_config=config, evaluation=evaluation)
                fp = job.fingerprint
                if fp in by_fingerprint:
                    # e.g. "beta=1" and "beta=1, tc_weight=0" when 0 is the default: run once.
                    if merged is not None:
                        merged.append((name, by_fingerprint[fp]))
                    continue
                by_fingerprint[fp] = name
                seen[name] = job
                jobs.append(job)
    return jobs
