"""Reading run folders: a run's config, scores and training status, through ``RunDir``.

A run folder (see ARCHITECTURE.md and ``dis_eval.run_dir``) holds the resolved training config
and, once trained and scored, a summary and metrics. Files that are there but cannot be read
are recorded in ``Run.problems`` (reported by ``missing_report``), never dropped silently.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dis_eval.errors import UserError
from dis_eval.results.keys import group_key, is_number, labelled, run_seed, split_label
from dis_eval.run_dir import CONFIG_FILE, SUMMARY_FILE, RunDir
from dis_eval.run_dir import PROTOCOL_BLOCKS as PROTOCOLS_KEY


@dataclass
class Run:
    """One run folder as read from disk."""

    path: Path
    config: dict[str, Any]
    metrics: dict[str, Any] | None
    summary: dict[str, Any] | None
    problems: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        """The training status from the summary (``done``, ``failed``, ``running``, ...)."""
        if self.summary is None:
            return f"no {SUMMARY_FILE}"
        return str(self.summary.get("status", "unknown"))

    @property
    def seed(self) -> Any:
        """The config's seed (the first key whose last component is a seed key), or None."""
        return run_seed(self.config)

    @property
    def has_scores(self) -> bool:
        return self.metrics is not None and bool(self.scores())

    def scores(self) -> dict[str, float]:
        """Flat scores: ``metric`` (headline) and ``metric.key`` (every numeric field) of the
        top-level record, and the same labelled by convention (``paper:mig``,
        ``dlib:mig.discrete_mig``) for each record under ``protocols``."""
        if self.metrics is None:
            return {}
        out = _flat_scores(self.metrics)
        for conv, record in self.records().items():
            out.update({labelled(conv, k): v for k, v in _flat_scores(record).items()})
        return out

    def records(self) -> dict[str, dict[str, Any]]:
        """metrics.json's per-convention records (``protocols``), by name."""
        blocks = (self.metrics or {}).get(PROTOCOLS_KEY)
        return {str(k): v for k, v in blocks.items() if isinstance(v, dict)} if isinstance(blocks, dict) else {}

    def _record_of(self, score: str) -> tuple[dict[str, Any] | None, str]:
        conv, name = split_label(score)
        return (self.metrics if conv is None else self.records().get(conv)), name

    def metric_seed_spread(self, score: str) -> tuple[float, int] | None:
        """(sd, n) of ``score`` over the metric seeds of its evaluation (``--repeats``), or None
        when it was scored with one metric seed."""
        from dis_eval.metrics import REGISTRY

        record, name = self._record_of(score)
        metric, _, key = name.partition(".")
        if record is None or metric not in REGISTRY:
            return None
        entry = ((record.get("spread") or {}).get(metric) or {}).get(key or REGISTRY[metric][2])
        if not isinstance(entry, dict) or not is_number(entry.get("std")) or not is_number(entry.get("n")):
            return None
        return float(entry["std"]), int(entry["n"])

    def baselines(self, score: str) -> dict[str, float | None]:
        """``{"random": value, "oracle": value}`` recorded beside a headline score (empty when
        none was computed; None for a baseline undefined on its codes)."""
        record, name = self._record_of(score)
        entry = ((record or {}).get("baselines") or {}).get(name)
        if "." in name or not isinstance(entry, dict):
            return {}
        return {str(k): (float(v["headline"]) if isinstance(v, dict) and is_number(v.get("headline")) else None)
                for k, v in entry.items()}

    def group_key(self) -> dict[str, Any]:
        """Everything that defines the run's configuration (see ``grouping.group_key``)."""
        return group_key(self.config, self.metrics)


def _flat_scores(record: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for metric, value in (record.get("headline") or {}).items():
        if is_number(value):
            out[str(metric)] = float(value)
    for metric, fields in (record.get("scores") or {}).items():
        if isinstance(fields, dict):
            for key, value in fields.items():
                if is_number(value):
                    out[f"{metric}.{key}"] = float(value)
    return out


def _read_optional(path: Path, read: Callable[[], dict[str, Any] | None], problems: list[str]
                   ) -> dict[str, Any] | None:
    """``read()`` (a RunDir reader: None when absent or unreadable); a file that is there but
    unreadable is recorded in ``problems`` with the reason."""
    value = read()
    if value is None and path.exists():
        problems.append(_why_unreadable(path))
    return value


def _why_unreadable(path: Path) -> str:
    """Why ``path`` holds no JSON object (read again only to name the reason)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"unreadable {path.name}: {exc}"
    if not isinstance(value, dict):
        return f"{path.name} is not a JSON object"
    return f"unreadable {path.name}"  # it changed between the two reads


def load_run(path: str | os.PathLike) -> Run:
    """Read one run folder (its config required; metrics and summary optional)."""
    run_dir = RunDir(path)
    config = run_dir.read_config_dict()
    problems: list[str] = []
    metrics = _read_optional(run_dir.metrics, run_dir.read_metrics, problems)
    summary = _read_optional(run_dir.summary, run_dir.read_summary, problems)
    return Run(path=run_dir.path, config=config, metrics=metrics, summary=summary, problems=problems)


def discover_runs(paths: Iterable[str | os.PathLike]) -> list[Run]:
    """Run folders named in ``paths``, or found below them (any folder with a config)."""
    found: list[Path] = []
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise UserError(f"{p} does not exist; pass run folders or a folder containing them")
        if RunDir(p).is_run():
            found.append(p)
            continue
        below = sorted(c.parent for c in p.rglob(CONFIG_FILE) if RunDir(c.parent).is_run())
        if not below:
            raise UserError(f"no run folders (with {CONFIG_FILE}) in {p}")
        found.extend(below)
    unique = sorted({f.resolve(): f for f in found}.values(), key=lambda f: str(f))
    return [load_run(f) for f in unique]
