"""Reference results: full-length runs shipped with the package, read back as mean ± sd over
seeds per (model, setting, data, protocol, score).

Layout (written by :mod:`dis_eval.reference.collect`, one folder per finished run, no weights)::

    dis_eval/reference/results/<set>/<run>/config.yaml       the run's resolved training config
                                          /metrics.json      its scores, as `evaluate` wrote them
                                          /provenance.json   device, versions, commit, steps, wall time

``<set>`` is the sweep's name (``reference_beta1``: pipelines/configs/reference_beta1.yaml).
Nothing has been shipped until the GPU run is done: every reader then says
:data:`NO_REFERENCE_YET` instead of showing numbers.

A score is identified by a :class:`ScoreKey`. Its protocol is named here once: ``dlib`` for
disentanglement_lib's convention (mean codes, ground truth from the rows the model was trained
on) and ``paper`` for the Echo authors' (the noisy sample, ground truth from the full grid); any
other combination gets a plain description. See docs/evaluation-protocols.md.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dis_eval.config.evaluation import CONVENTIONS
from dis_eval.run_dir import CONFIG_FILE, METRICS_FILE, RunDir, read_json_object

REFERENCE_DIR = Path(__file__).resolve().parent / "results"
PROVENANCE_FILE = "provenance.json"
RUN_FILES: tuple[str, ...] = (CONFIG_FILE, METRICS_FILE, PROVENANCE_FILE)
NO_REFERENCE_YET = ("no reference run yet: the GPU run is still to do "
                    "(scripts/reproduce_reference.sh; docs/reference-results.md)")

# Protocol names (the evaluation's conventions, dis_eval.config.evaluation) and their labels.
DLIB, PAPER = CONVENTIONS
PROTOCOL_LABELS: dict[str, str] = {
    DLIB: "disentanglement_lib: mean codes, training rows",
    PAPER: "the authors': noisy sample, full grid",
}
# Data kinds: the paper's two columns. A subset other than the authors' recipe is "dependent
# (<recipe>)", which matches neither the paper nor a reference run.
INDEPENDENT, DEPENDENT = "independent", "dependent"


@dataclass(frozen=True, order=True)
class ScoreKey:
    """What a number is: a model (project name) at (beta, lambda), trained on a kind of data,
    scored under a protocol, a headline score (``factor_vae``, ``mig``, ...)."""

    model: str
    beta: float
    lam: float
    data: str
    protocol: str
    score: str

    def setting(self) -> str:
        lam = f", lambda {self.lam:g}" if self.lam else ""
        return f"{self.model} (beta {self.beta:g}{lam})"


@dataclass(frozen=True)
class SeedStat:
    """One score over training seeds: the values (one per run), the runs' step counts."""

    key: ScoreKey
    values: tuple[float, ...]
    steps: tuple[int, ...]
    seeds: tuple[Any, ...] = ()

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return math.fsum(self.values) / len(self.values)

    @property
    def sd(self) -> float | None:
        """Sample standard deviation over seeds (ddof=1); None for a single run."""
        if len(self.values) < 2:
            return None
        m = self.mean
        return math.sqrt(math.fsum((v - m) ** 2 for v in self.values) / (len(self.values) - 1))

    def cell(self, digits: int = 2) -> str:
        """``0.83 ± 0.02 (n=3, 300,000 steps)``; a lone run shows its value and n=1."""
        spread = f" ± {self.sd:.{digits}f}" if self.sd is not None else ""
        return f"{self.mean:.{digits}f}{spread} (n={self.n}, {steps_text(self.steps)})"


def steps_text(steps: Iterable[int]) -> str:
    values = sorted(set(steps))
    if not values:
        return "steps unknown"
    if len(values) == 1:
        return f"{values[0]:,} steps"
    return f"{values[0]:,}-{values[-1]:,} steps"


# ----------------------------------------------------------------------------- a run's scores


def protocol_name(representation: str | None, rows: str | None, trained_subset: Any) -> str:
    """``dlib`` / ``paper`` / a description, from what an evaluation recorded: its
    ``representation`` and ``protocol`` (rows: ``subset`` | ``full`` | None for the run's own)."""
    from dis_eval.data.dependent import NO_SUBSET

    on_subset = trained_subset not in NO_SUBSET
    rows = rows or ("subset" if on_subset else "full")
    training_rows = rows == "subset" or not on_subset
    if representation == "mean" and training_rows:
        return DLIB
    if representation == "sample" and rows == "full":
        return PAPER
    where = "full grid" if rows == "full" else "subset rows"
    return f"{representation} codes, {where}"


def protocol_label(name: str) -> str:
    return PROTOCOL_LABELS.get(name, name)


def protocol_scores(metrics: Mapping[str, Any] | None, trained_subset: Any) -> dict[str, dict[str, float]]:
    """A metrics.json's headline scores by protocol: ``{protocol: {score: value}}``.

    Each metric's entry in ``evaluations`` says how it was computed (representation and rows);
    a file without it falls back on the top-level fields. Per-protocol blocks
    (``protocols: {name: {headline, representation, protocol}}``) are read as well. Values that
    are not numbers (an undefined score is ``null``) are left out."""
    out: dict[str, dict[str, float]] = {}
    if not isinstance(metrics, Mapping):
        return out
    blocks = metrics.get("protocols")
    if isinstance(blocks, Mapping):
        for block in blocks.values():
            if isinstance(block, Mapping):
                for name, scores in protocol_scores({k: v for k, v in block.items() if k != "protocols"},
                                                    trained_subset).items():
                    out.setdefault(name, {}).update(scores)
    evaluations = metrics.get("evaluations") if isinstance(metrics.get("evaluations"), Mapping) else {}
    for score, value in (metrics.get("headline") or {}).items():
        if not _is_number(value):
            continue
        how = evaluations.get(score) if isinstance(evaluations.get(score), Mapping) else metrics
        name = protocol_name(how.get("representation", metrics.get("representation")),
                             how.get("protocol", metrics.get("protocol")), trained_subset)
        out.setdefault(name, {})[str(score)] = float(value)
    return out


def data_kind(subset: Any, metrics: Mapping[str, Any] | None = None) -> str:
    """``independent`` (no subset: the full grid), ``dependent`` (the authors' recipe, the
    paper's dependent data), ``dependent (<recipe>)`` for any other subset, and
    ``independent, partial (<source>)`` for a run trained on part of the grid without a subset
    recipe (a test fixture: its metrics.json records rows that are not the full grid)."""
    from dis_eval.data.dependent import NO_SUBSET, PRESETS, parse_recipe

    partial = _partial_source(metrics, subset)
    if subset in NO_SUBSET:
        return f"{INDEPENDENT}, partial ({partial})" if partial else INDEPENDENT
    text = str(subset)
    recipe: dict[str, Any] | None = None
    if text.endswith((".h5", ".hdf5")):
        recipe = _subset_file_recipe(text)
    else:
        try:
            r = parse_recipe(text)
            recipe = {"bins": r.bins, "drop": r.drop, "seed": r.seed}
        except Exception:  # noqa: BLE001 - an unreadable recipe is reported as itself
            recipe = None
    if recipe == PRESETS["authors"] and not partial:
        return DEPENDENT
    name = Path(text).stem if text.endswith((".h5", ".hdf5")) else text
    return f"{DEPENDENT} ({name}{', partial source ' + partial if partial else ''})"


def _partial_source(metrics: Mapping[str, Any] | None, subset: Any) -> str | None:
    """``<source stem>, <rows> rows`` when an evaluation recorded in ``metrics`` scored the whole
    source (no subset) and found it is not the full grid (a test fixture); else None."""
    from dis_eval.data.dependent import NO_SUBSET

    if not isinstance(metrics, Mapping):
        return None
    blocks = metrics.get("protocols") if isinstance(metrics.get("protocols"), Mapping) else {}
    for record in (metrics, *blocks.values()):
        data = record.get("data") if isinstance(record, Mapping) else None
        if not isinstance(data, Mapping) or data.get("subset") not in NO_SUBSET:
            continue  # scored on subset rows: says nothing about the source
        if data.get("is_full_grid") is False:
            return f"{Path(str(data.get('source'))).stem}, {data.get('rows')} rows"
    return None


def _subset_file_recipe(path: str) -> dict[str, Any] | None:
    """The recipe a prepared subset file records (its attributes), or None when unreadable."""
    if not Path(path).is_file():
        return None
    import h5py

    try:
        with h5py.File(path, "r") as f:
            a = dict(f.attrs)
        return {"bins": int(a["bins"]), "drop": float(a["drop"]), "seed": int(a["seed"])}
    except (OSError, KeyError, ValueError):
        return None


def run_keys(config: Mapping[str, Any], metrics: Mapping[str, Any] | None) -> list[tuple[ScoreKey, float]]:
    """Every (key, value) a run contributes: its headline scores under each protocol."""
    model = str(config.get("model", "?"))
    beta = float(config.get("beta") or 0.0)
    lam = float(config.get("tc_weight") or config.get("lambda_tc") or config.get("gamma") or 0.0)
    subset = config.get("subset")
    data = data_kind(subset, metrics)
    out = []
    for protocol, scores in protocol_scores(metrics, subset).items():
        for score, value in scores.items():
            out.append((ScoreKey(model, beta, lam, data, protocol, score), value))
    return out


def seed_stats(items: Iterable[tuple[ScoreKey, float, int, Any]]) -> list[SeedStat]:
    """(key, value, steps, seed) per run and score -> one :class:`SeedStat` per (key, steps),
    sorted by key."""
    groups: dict[tuple[ScoreKey, int], list[tuple[float, Any]]] = {}
    for key, value, steps, seed in items:
        groups.setdefault((key, int(steps)), []).append((value, seed))
    stats = [SeedStat(key, tuple(v for v, _ in vals), (steps,) * len(vals), tuple(s for _, s in vals))
             for (key, steps), vals in groups.items()]
    return sorted(stats, key=lambda s: (s.key, s.steps))


# ----------------------------------------------------------------------------- the shipped set


@dataclass(frozen=True)
class ReferenceRun:
    """One shipped run: its set, folder, resolved config, metrics.json and provenance."""

    set_name: str
    path: Path
    config: dict[str, Any]
    metrics: dict[str, Any]
    provenance: dict[str, Any]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def steps(self) -> int:
        """Steps trained (the provenance's count; the config's when absent)."""
        return int(self.provenance.get("steps_trained") or self.config.get("steps") or 0)

    def keys(self) -> list[tuple[ScoreKey, float]]:
        return run_keys(self.config, self.metrics)


@dataclass(frozen=True)
class ReferenceSet:
    """Every shipped run found below ``root``, and what could not be read (never dropped
    silently: ``problems``)."""

    root: Path
    runs: tuple[ReferenceRun, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.runs

    def stats(self) -> list[SeedStat]:
        """Mean ± sd over seeds per (model, beta, lambda, data, protocol, score) and step count."""
        return seed_stats((key, value, run.steps, run.config.get("seed"))
                          for run in self.runs for key, value in run.keys())

    def describe(self) -> str:
        """One line: what is shipped (or :data:`NO_REFERENCE_YET`)."""
        if self.empty:
            return NO_REFERENCE_YET
        sets = sorted({r.set_name for r in self.runs})
        devices = sorted({str(r.provenance.get("device_name") or r.provenance.get("device")) for r in self.runs})
        return (f"{len(self.runs)} reference run(s) in {', '.join(sets)}, "
                f"{steps_text(r.steps for r in self.runs)}, on {', '.join(devices)}")


def read_reference_run(path: str | os.PathLike, set_name: str) -> ReferenceRun:
    """One run folder of the layout above; a missing or unreadable file is a ``UserError``."""
    from dis_eval.errors import UserError

    run = RunDir(path)
    missing = [f for f in RUN_FILES if not (run.path / f).is_file()]
    if missing:
        raise UserError(f"reference run {run.path} lacks {', '.join(missing)}")
    metrics = read_json_object(run.metrics)
    provenance = read_json_object(run.path / PROVENANCE_FILE)
    if metrics is None or provenance is None:
        bad = METRICS_FILE if metrics is None else PROVENANCE_FILE
        raise UserError(f"reference run {run.path}: {bad} is not a JSON object")
    return ReferenceRun(set_name, run.path, run.read_config_dict(), metrics, provenance)


def load_reference(root: str | os.PathLike | None = None, sets: Sequence[str] | None = None) -> ReferenceSet:
    """The reference runs below ``root`` (default: the package's shipped set), every set or the
    named ``sets``. An absent or empty root is an empty set (:data:`NO_REFERENCE_YET`)."""
    from dis_eval.errors import UserError

    base = Path(root) if root is not None else REFERENCE_DIR
    runs: list[ReferenceRun] = []
    problems: list[str] = []
    if base.is_dir():
        for set_dir in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
            if sets is not None and set_dir.name not in sets:
                continue
            for run_dir in sorted(p for p in set_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
                try:
                    runs.append(read_reference_run(run_dir, set_dir.name))
                except UserError as exc:
                    problems.append(str(exc))
    return ReferenceSet(base, tuple(runs), tuple(problems))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

