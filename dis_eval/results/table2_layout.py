"""The paper's Table 2 layout: beta then lambda rows, (data set, score, model) columns, mean ± sd cells.

(Named ``table2_layout``, not ``table2``, so that importing it never shadows the package's
``table2`` function.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from dis_eval.errors import UserError
from dis_eval.results.axes import BETA_KEYS, LAMBDA_KEYS, MODEL_KEYS, data_label, first_key
from dis_eval.results.formats import latex_escape, to_markdown
from dis_eval.results.keys import flatten
from dis_eval.results.tables import format_cell, mean_sd
from dis_eval.run_dir import CONFIG_FILE, METRICS_FILE

if TYPE_CHECKING:
    import pandas as pd

    from dis_eval.results.runs import Run


def table2(runs: Sequence[Run], scores: Sequence[str] = ("factor_vae", "mig"), digits: int = 2,
           latex: bool = False) -> pd.DataFrame:
    """The paper's Table 2 layout: rows are beta settings (lambda = 0) then lambda settings
    (beta = 1), so the (beta=1, lambda=0) runs appear in both blocks as in the paper;
    columns are (data set, score, model), nested in that order as in the paper (independent |
    dependent ground truth, then Factor | MIG, then Echo | VAE); cells ``mean ± sd`` over seeds.

    Runs whose config has neither a beta nor a model key cannot be placed and raise
    ``UserError``; runs with beta != 1 and lambda != 0 get their own ``β=…, λ=…`` rows.
    """
    import pandas as pd

    scored = [r for r in runs if r.has_scores]
    if not scored:
        raise UserError(f"no scored runs ({METRICS_FILE}) to build Table 2 from; run `dis-eval evaluate` first")
    cells: dict[tuple[str, tuple[str, str, str]], list[float]] = {}
    row_order: dict[str, tuple] = {}
    col_set: set[tuple[str, str, str]] = set()
    for run in scored:
        flat = flatten(run.config)
        mkey, bkey = first_key(flat, MODEL_KEYS), first_key(flat, BETA_KEYS)
        if mkey is None or bkey is None:
            raise UserError(
                f"{run.path}: {CONFIG_FILE} has no model/beta key (looked for {MODEL_KEYS[:3]} and "
                f"{BETA_KEYS[:2]}); only the plain score tables can show such runs"
            )
        lkey = first_key(flat, LAMBDA_KEYS)
        model, beta = str(flat[mkey]), float(flat[bkey])
        lam = float(flat[lkey]) if lkey is not None and flat[lkey] is not None else 0.0
        labels: list[tuple[str, tuple]] = []
        if lam == 0.0:
            labels.append((f"β = {beta:g}", (0, beta, 0.0)))
        if beta == 1.0:
            labels.append((f"λ = {lam:g}", (1, lam, 0.0)))
        if not labels:
            labels.append((f"β = {beta:g}, λ = {lam:g}", (2, beta, lam)))
        data = data_label(run)
        run_scores = run.scores()
        for s in scores:
            if s not in run_scores:
                continue
            col = (data, s, model)
            col_set.add(col)
            for label, order in labels:
                row_order[label] = order
                cells.setdefault((label, col), []).append(run_scores[s])

    # Columns: full data before subsets, scores in the order given, Echo before VAE.
    def col_sort(c: tuple[str, str, str]) -> tuple:
        return (c[0] != "full", c[0], list(scores).index(c[1]), c[2] != "echo", c[2])

    cols = sorted(col_set, key=col_sort)
    rows = sorted(row_order, key=lambda r: row_order[r])
    body = []
    for r in rows:
        line = []
        for c in cols:
            vals = cells.get((r, c), [])
            m, sd = mean_sd(vals)
            line.append(format_cell(m, sd, len(vals), digits, latex))
        body.append(line)
    index = pd.Index(rows, name="setting")
    return pd.DataFrame(body, index=index, columns=pd.MultiIndex.from_tuples(cols, names=["data", "score", "model"]))


def table2_markdown(t2: pd.DataFrame) -> str:
    """Markdown with one header row: ``data / score / model``."""
    flat = t2.copy()
    flat.columns = [" / ".join(c) for c in t2.columns]
    flat = flat.reset_index()
    return to_markdown(flat)


def table2_latex(t2: pd.DataFrame) -> str:
    """LaTeX with a three-level header (data set, score, model) as in the paper."""
    cols = list(t2.columns)
    lines = [r"\begin{tabular}{l" + "c" * len(cols) + "}", r"\toprule"]
    for level in range(3):
        cells, i = [], 0
        while i < len(cols):
            j = i
            prefix = cols[i][: level + 1]
            while j < len(cols) and cols[j][: level + 1] == prefix:
                j += 1
            name = latex_escape(str(cols[i][level]))
            cells.append(name if j - i == 1 else rf"\multicolumn{{{j - i}}}{{c}}{{{name}}}")
            i = j
        lines.append(("setting" if level == 0 else "") + " & " + " & ".join(cells) + r" \\")
    lines.append(r"\midrule")
    for label, row in t2.iterrows():
        lab = str(label).replace("β", r"$\beta$").replace("λ", r"$\lambda$")
        lines.append(lab + " & " + " & ".join(str(v) for v in row.tolist()) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"
