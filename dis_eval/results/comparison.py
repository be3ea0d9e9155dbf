"""The files a comparison writes (scores, Table 2, missing runs), each atomically, into one folder."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dis_eval.atomic import atomic_write_text
from dis_eval.errors import UserError
from dis_eval.results.formats import to_latex, to_markdown
from dis_eval.results.grouping import Grouped, group_runs
from dis_eval.results.table2_layout import table2, table2_latex, table2_markdown
from dis_eval.results.tables import default_scores, display_table, score_table
from dis_eval.run_dir import METRICS_FILE

if TYPE_CHECKING:
    import pandas as pd

    from dis_eval.results.runs import Run

# The comparison folder's files (keys of CompareOutputs.files -> file names).
COMPARISON_FILES: dict[str, str] = {
    "csv": "scores.csv", "md": "scores.md", "tex": "scores.tex",
    "table2_csv": "table2.csv", "table2_md": "table2.md", "table2_tex": "table2.tex",
    "missing": "missing.txt",
}
# Table 2's two scores (the paper's FactorVAE score and MIG) when requested - under the
# authors' convention when scored, else disentanglement_lib's, else bare - else the first two.
TABLE2_SCORES: tuple[str, ...] = ("factor_vae", "mig")
TABLE2_CONVENTIONS: tuple[str | None, ...] = ("paper", "dlib", None)


def table2_scores(scores: Sequence[str]) -> list[str]:
    """The scores Table 2 shows, from those tabulated."""
    from dis_eval.results.keys import labelled

    for conv in TABLE2_CONVENTIONS:
        names = [s if conv is None else labelled(conv, s) for s in TABLE2_SCORES]
        present = [s for s in names if s in scores]
        if present:
            return present
    return list(scores[:2])


def missing_report(runs: Sequence[Run], scores: Sequence[str] | None = None) -> list[str]:
    """One line per run without metrics (with its training status), per run missing a
    requested score, and per unreadable file."""
    lines = []
    for r in runs:
        for p in r.problems:
            lines.append(f"{r.path}: {p}")
        if not r.has_scores:
            lines.append(f"{r.path}: no scores ({METRICS_FILE} missing or empty; training status: {r.status})")
        elif scores:
            absent = [s for s in scores if s not in r.scores()]
            if absent:
                lines.append(f"{r.path}: {METRICS_FILE} lacks {', '.join(absent)}")
    return lines


@dataclass
class CompareOutputs:
    """What ``write_comparison`` computed and wrote (``files``: name -> path)."""

    table: pd.DataFrame
    display: pd.DataFrame
    table2: pd.DataFrame | None
    missing: list[str]
    files: dict[str, Path]
    table2_note: str = ""
    grouped: Grouped | None = None  # the runs grouped by configuration
    scores: list[str] = field(default_factory=list)  # the scores tabulated (requested or default)


def write_comparison(runs: Sequence[Run], out_dir: str | os.PathLike, scores: Sequence[str] | None = None,
                     digits: int = 2, with_table2: bool = True) -> CompareOutputs:
    """Write ``scores.csv`` (numbers), ``scores.md``, ``scores.tex``, ``missing.txt`` and,
    when the configs carry model/beta keys, ``table2.{csv,md,tex}`` into ``out_dir``."""
    out_dir = Path(out_dir)
    grouped = group_runs(runs)
    scored = [r for _, rs in grouped.groups for r in rs]
    scores = list(scores) if scores is not None else default_scores(scored)
    table = score_table(grouped, scores)
    disp = display_table(table, scores, digits)
    files: dict[str, Path] = {}

    def write(name: str, text: str) -> None:
        files[name] = out_dir / COMPARISON_FILES[name]
        atomic_write_text(files[name], text)

    write("csv", table.to_csv(index=False))
    write("md", to_markdown(disp))
    write("tex", to_latex(display_table(table, scores, digits, latex=True), caption="mean ± sd over training seeds (n: runs)"))
    t2, note = None, ""
    if with_table2 and scored:
        t2_scores = table2_scores(scores)
        try:
            t2 = table2(scored, t2_scores, digits)
        except UserError as exc:  # configs without model/beta keys: the plain table still stands
            note = f"Table 2 layout not written: {exc}"
        if t2 is not None:
            write("table2_csv", t2.to_csv())
            write("table2_md", table2_markdown(t2))
            write("table2_tex", table2_latex(table2(scored, t2_scores, digits, latex=True)))
    missing = missing_report(runs, scores)
    write("missing", "".join(m + "\n" for m in missing) or "none: every run has scores\n")
    return CompareOutputs(table=table, display=disp, table2=t2, missing=missing, files=files, table2_note=note,
                          grouped=grouped, scores=scores)
