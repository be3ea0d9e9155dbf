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
from dis_eval.results.keys import group_key, is_number, run_seed
from dis_eval.run_dir import CONFIG_FILE, SUMMARY_FILE, RunDir


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
        """Flat scores: ``metric`` (headline) and ``metric.key`` (every numeric field)."""
        if self.metrics is None:
            return {}
        out: dict[str, float] = {}
        for metric, value in (self.metrics.get("headline") or {}).items():
            if is_number(value):
                out[str(metric)] = float(value)
        for metric, fields in (self.metrics.get("scores") or {}).items():
            if isinstance(fields, dict):
                for key, value in fields.items():
                    if is_number(value):
                        out[f"{metric}.{key}"] = float(value)
        return out

    def group_key(self) -> dict[str, Any]:
        """Everything that defines the run's configuration (see ``grouping.group_key``)."""
        return group_key(self.config, self.metrics)


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
