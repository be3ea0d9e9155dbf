"""Tables as text: GitHub Markdown and booktabs LaTeX (with escaping), no extra dependencies."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def plain(v: Any) -> str:
    """A cell as text: empty for None/NaN, ``%g`` for floats, ``str`` otherwise."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def latex_escape(s: str) -> str:
    """Escape LaTeX's special characters that occur in config values and score names."""
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#")):
        s = s.replace(a, b)
    return s


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub Markdown table (no external ``tabulate`` dependency)."""
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(plain(v) for v in row.tolist()) + " |")
    return "\n".join(lines) + "\n"


def to_latex(df: pd.DataFrame, caption: str | None = None) -> str:
    """A booktabs ``tabular`` (cells already formatted; ``$\\pm$`` left unescaped)."""
    cols = [str(c) for c in df.columns]
    lines = [r"\begin{tabular}{" + "l" * len(cols) + "}", r"\toprule"]
    lines.append(" & ".join(latex_escape(c) for c in cols) + r" \\")
    lines.append(r"\midrule")
    for _, row in df.iterrows():
        cells = []
        for v in row.tolist():
            s = plain(v)
            cells.append(s if "$" in s else latex_escape(s))
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if caption:
        lines = [r"% " + caption] + lines
    return "\n".join(lines) + "\n"
