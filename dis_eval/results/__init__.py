"""Run folders' scores, grouped over seeds into tables (CSV, Markdown, LaTeX, the paper's Table 2).

```python
from dis_eval.results import discover_runs, group_runs, write_comparison
runs = discover_runs(["runs/"])            # every run folder below runs/
outputs = write_comparison(runs, "cmp")    # scores.{csv,md,tex}, table2.{csv,md,tex}, missing.txt
```
One job per module: ``runs`` (reading run folders), ``keys`` (a run's configuration key),
``grouping`` (which runs form one
configuration), ``axes`` (a run's model, beta, lambda and training data), ``tables`` (mean ± sd
per configuration), ``formats`` (Markdown and LaTeX), ``table2_layout`` (the paper's Table 2),
``comparison`` (the files ``dis-eval compare`` writes). Names load on first use, so importing
the package costs no pandas (see ``dis_eval._lazy``).
"""

from dis_eval._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "Run": ".runs", "load_run": ".runs", "discover_runs": ".runs",
    "SEED_KEYS": ".keys", "NON_CONFIG_KEYS": ".keys", "EVAL_KEYS": ".keys", "group_key": ".keys",
    "run_seed": ".keys", "flatten": ".keys",
    "DERIVED_KEYS": ".grouping", "COLUMN_ORDER": ".grouping", "Grouped": ".grouping", "group_runs": ".grouping",
    "MODEL_KEYS": ".axes", "BETA_KEYS": ".axes", "LAMBDA_KEYS": ".axes", "DATA_KEYS": ".axes",
    "data_label": ".axes",
    "mean_sd": ".tables", "default_scores": ".tables", "score_table": ".tables", "format_cell": ".tables",
    "display_table": ".tables", "config_label": ".tables", "long_scores": ".tables",
    "to_markdown": ".formats", "to_latex": ".formats", "latex_escape": ".formats",
    "table2": ".table2_layout", "table2_markdown": ".table2_layout", "table2_latex": ".table2_layout",
    "missing_report": ".comparison", "CompareOutputs": ".comparison", "write_comparison": ".comparison",
})
