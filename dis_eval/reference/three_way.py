"""The three-way table: for each score, the user's runs, the reference runs at full length and
the paper's value, side by side, each labelled with the protocol it was computed under.

Rows are (model and setting, data, score, protocol) as the user's runs have them; where the
reference holds the same model, setting and score on another kind of data (the reference
trains on the full independent grid; the main job on the authors' dependent subset), that row
is shown too, so a reader sees full-length numbers without any being put beside data they
were not computed on. Cells: mean ± sd over training seeds (sd with ddof=1), n and the step
count. The paper's value is the authors' protocol's whatever the row's protocol
(:mod:`dis_eval.reference.paper`, one owner of its numbers). Without shipped reference runs the
reference column says :data:`~dis_eval.reference.results.NO_REFERENCE_YET` and shows no number.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dis_eval.atomic import atomic_write_text
from dis_eval.reference.paper import PAPER_CITATION, paper_value
from dis_eval.reference.results import (
    INDEPENDENT,
    NO_REFERENCE_YET,
    PAPER,
    ReferenceSet,
    ScoreKey,
    SeedStat,
    load_reference,
    protocol_label,
    run_keys,
    seed_stats,
)

THREE_WAY_FILES: dict[str, str] = {"three_way_md": "three_way.md", "three_way_csv": "three_way.csv"}
PAPER_PROTOCOL_NOTE = f"{protocol_label(PAPER)}, 300,000 steps; {PAPER_CITATION}"
COLUMNS: tuple[str, ...] = ("model", "data", "score", "protocol", "your runs", "reference runs", "paper")
FULL_LENGTH_STEPS = 300_000  # the paper's training length (batches), the reference runs' length
# Echo at beta 1 keeps every latent at its rate floor for about its first 2,000 steps (measured
# on the main job's CPU runs: rate 2.72 nats, the floor, until step 2,000; 15 nats by 3,000).
ECHO_FLOOR_STEPS = 2_000


@dataclass(frozen=True)
class ThreeWayRow:
    """One score of one setting under one protocol: the user's runs, the reference, the paper."""

    key: ScoreKey
    user: SeedStat | None
    reference: SeedStat | None
    paper: float | None

    def cells(self, reference_empty: bool, digits: int = 2) -> dict[str, str]:
        if self.reference is not None:
            ref = self.reference.cell(digits)
        elif reference_empty:
            ref = "no reference run yet"
        else:
            ref = "no reference run of this setting"
        if self.paper is None:
            paper = "not in the paper"
        else:
            paper = f"{self.paper:.2f} (authors' protocol)"
        return {
            "model": self.key.setting(), "data": self.key.data, "score": self.key.score,
            "protocol": protocol_label(self.key.protocol),
            "your runs": self.user.cell(digits) if self.user is not None else "no run of yours",
            "reference runs": ref, "paper": paper,
        }


@dataclass(frozen=True)
class ThreeWayTable:
    rows: tuple[ThreeWayRow, ...]
    reference: ReferenceSet

    def notes(self) -> list[str]:
        """What the columns mean, and the state of the reference set."""
        out = [
            "your runs / reference runs: mean ± sd over training seeds (sd with ddof=1; a lone run "
            "shows its value), n runs, steps trained; both scored under the row's protocol. The "
            f"reference runs are trained to full length ({FULL_LENGTH_STEPS:,} steps) on a GPU.",
            f"paper: {PAPER_PROTOCOL_NOTE}; shown only for the setting the paper identifies "
            "(beta 1, lambda 0).",
        ]
        if self.reference.empty:
            out.insert(0, NO_REFERENCE_YET + ".")
        else:
            out.insert(0, "reference: " + self.reference.describe() + ".")
        out += [f"unreadable reference run: {p}" for p in self.reference.problems]
        return out

    def records(self, digits: int = 2) -> list[dict[str, Any]]:
        """One dict a row: the display cells, then the numbers (for CSV)."""
        recs = []
        for row in self.rows:
            rec: dict[str, Any] = dict(row.cells(self.reference.empty, digits))
            rec["protocol_name"] = row.key.protocol
            for part, stat in (("user", row.user), ("reference", row.reference)):
                rec[f"{part}_mean"] = stat.mean if stat else None
                rec[f"{part}_sd"] = stat.sd if stat else None
                rec[f"{part}_n"] = stat.n if stat else 0
                rec[f"{part}_steps"] = ",".join(str(s) for s in sorted(set(stat.steps))) if stat else ""
            rec["paper_value"] = row.paper
            recs.append(rec)
        return recs

    def markdown(self, digits: int = 2) -> str:
        lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        for row in self.rows:
            cells = row.cells(self.reference.empty, digits)
            lines.append("| " + " | ".join(cells[c] for c in COLUMNS) + " |")
        return "\n".join(lines + [""] + [f"- {n}" for n in self.notes()]) + "\n"

    def csv(self, digits: int = 2) -> str:
        import csv
        import io

        recs = self.records(digits)
        buf = io.StringIO()
        fields = list(recs[0]) if recs else [*COLUMNS]
        writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        for rec in recs:
            writer.writerow({k: "" if v is None else v for k, v in rec.items()})
        return buf.getvalue()


def user_stats(runs: Iterable[Any], scores: Sequence[str] | None = None) -> list[SeedStat]:
    """The user's scores over training seeds: runs (``dis_eval.results.Run``: ``config``,
    ``metrics``, ``summary``, ``seed``) -> one :class:`SeedStat` per (key, steps trained).

    ``scores``: the headline scores to keep, as ``compare`` names them (``mig`` under every
    protocol, ``paper:mig`` under one; sub-fields such as ``mig.discrete_mig`` have no row)."""
    from dis_eval.results.keys import split_label

    wanted: dict[str, set[str | None]] = {}
    for label in scores or ():
        conv, name = split_label(label)
        wanted.setdefault(name, set()).add(conv)

    def keep(key: ScoreKey) -> bool:
        convs = wanted.get(key.score)
        return convs is not None and (None in convs or key.protocol in convs)

    items = []
    for run in runs:
        steps = int((run.summary or {}).get("step") or run.config.get("steps") or 0)
        for key, value in run_keys(run.config, run.metrics):
            if scores is None or keep(key):
                items.append((key, value, steps, run.seed))
    return seed_stats(items)


def three_way_table(user: Sequence[SeedStat], reference: ReferenceSet) -> ThreeWayTable:
    """Rows for every user score (matched with the reference's stat of the same key and the
    paper's value), plus the reference's stats of the same model, setting, score and protocol
    on other data. A key trained to several step counts by the user gives a row each."""
    ref_stats = reference.stats()
    ref_by_key: dict[ScoreKey, SeedStat] = {}
    for stat in ref_stats:  # several step counts (should not happen): the longest stands
        if stat.key not in ref_by_key or max(stat.steps) > max(ref_by_key[stat.key].steps):
            ref_by_key[stat.key] = stat
    rows: list[ThreeWayRow] = []
    user_keys = {s.key for s in user}
    for stat in user:
        rows.append(ThreeWayRow(stat.key, stat, ref_by_key.get(stat.key), _paper(stat.key)))
    shown = {(k.model, k.beta, k.lam, k.score, k.protocol) for k in user_keys}
    for key, stat in ref_by_key.items():
        if key not in user_keys and (key.model, key.beta, key.lam, key.score, key.protocol) in shown:
            rows.append(ThreeWayRow(key, None, stat, _paper(key)))
    rows.sort(key=lambda r: (r.key.model, r.key.beta, r.key.lam, r.key.data != INDEPENDENT, r.key.data,
                             r.key.score, r.key.protocol, max(r.user.steps) if r.user else 0))
    return ThreeWayTable(tuple(rows), reference)


def short_run_explanation(steps: int) -> str:
    """Two sentences for a report: why a run of ``steps`` batches differs from the full-length
    reference (the main job's README.txt)."""
    if steps >= FULL_LENGTH_STEPS:
        return (f"A run of {steps:,} steps is full length, like the reference runs, so its scores should "
                "agree with theirs within the spread over seeds. A larger difference, under the same "
                "protocol, is a disagreement worth reporting.")
    state = ("its latents have not switched on yet" if steps < ECHO_FLOOR_STEPS
             else "its latents have only just switched on")
    return (f"A run of {steps:,} steps has had {100 * steps / FULL_LENGTH_STEPS:.2g} % of the paper's "
            f"{FULL_LENGTH_STEPS:,}: Echo at beta 1 keeps every latent at its rate floor for about its first "
            f"{ECHO_FLOOR_STEPS:,} steps, so {state}, and its scores (and which model ranks first) describe "
            "a model early in training, not the converged one the paper scored. The reference runs are the "
            "same models trained to full length on a GPU and scored under both protocols, so comparing with "
            "them, not with the paper alone, tells a run that is only short from an implementation that "
            "disagrees with the paper.")


def _paper(key: ScoreKey) -> float | None:
    return paper_value(key.model, key.data, key.score, key.beta, key.lam)


def write_three_way(runs: Sequence[Any], out_dir: str | os.PathLike, scores: Sequence[str] | None = None,
                    reference: ReferenceSet | None = None, digits: int = 2,
                    log: Callable[[str], Any] = print) -> dict[str, Path]:
    """three_way.md and three_way.csv for ``runs`` into ``out_dir`` (reference: the package's
    shipped set unless given); logs the table; returns name -> path."""
    table = three_way_table(user_stats(runs, scores), reference if reference is not None else load_reference())
    out = Path(out_dir)
    files = {name: out / fname for name, fname in THREE_WAY_FILES.items()}
    atomic_write_text(files["three_way_md"], table.markdown(digits))
    atomic_write_text(files["three_way_csv"], table.csv(digits))
    if table.rows:
        log("\nyour runs, the reference at full length and the paper, per score and protocol\n")
        log(table.markdown(digits))
    else:
        log("three-way table: no headline scores to show (" + (NO_REFERENCE_YET if table.reference.empty
                                                                else table.reference.describe()) + ")")
    return files
