"""Reference numbers to show beside a user's runs.

- :mod:`dis_eval.reference.paper`: the paper's published Table 2 (the one owner of its numbers);
- :mod:`dis_eval.reference.results`: the reference runs shipped in ``results/`` (full-length
  trainings with their config, metrics.json and provenance), read back as mean ± sd over seeds;
- :mod:`dis_eval.reference.collect`: finished runs copied into that layout, with provenance;
- :mod:`dis_eval.reference.plan`: the sweep ``scripts/reproduce_reference.sh`` runs (and its
  CPU smoke version);
- :mod:`dis_eval.reference.three_way`: the user's runs, the reference runs and the paper side
  by side, per score and protocol (``dis-eval compare`` and the main job write it).

See docs/reference-results.md. ``python -m dis_eval.reference`` runs the script's steps.
"""
