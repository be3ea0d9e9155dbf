"""Held-out combinations: a model trained on a dependent-factor subset never saw the factor
combinations the recipe dropped (the authors kept them as a test set; docs/dependent-subsets.md).
``evaluate`` on such a run reports, in metrics.json's ``held_out``:

- the reconstruction loss (Bernoulli NLL summed over pixels, the training objective's term,
  through the model's own noisy sample) and the rate per image, on the *kept* rows and on the
  *dropped* rows separately (up to ``HELD_OUT_ROWS`` random rows of each, seeded by the
  evaluation seed, in batches of ``HELD_OUT_BATCH``: an Echo sample sums min(d_max, B - 1) noise
  terms, so it sums the same d_max terms as in training whenever B > d_max);
- the primary convention's FactorVAE score and MIG under both ground truths: the subset (the
  rows the model saw) and the full grid (kept and dropped rows together).
"""

from __future__ import annotations

from typing import Any

import numpy as np

HELD_OUT_ROWS = 10_000  # rows of each part (kept, dropped) the losses are averaged over
HELD_OUT_BATCH = 256  # images a forward pass
HELD_OUT_METRICS: tuple[str, ...] = ("factor_vae", "mig")  # scored under both ground truths


def _losses(model: Any, data: Any, positions: np.ndarray, batch: int, device: Any, seed: int) -> dict[str, Any]:
    """Mean reconstruction loss and rate per image over ``positions`` of ``data``."""
    import torch

    from dis_eval.models.losses import reconstruction_loss

    gen = torch.Generator(device=device).manual_seed(int(seed))
    recon, rate, n = 0.0, 0.0, 0
    with torch.inference_mode():
        for lo in range(0, len(positions), batch):
            x = data.images(positions[lo: lo + batch]).float()
            mean, aux = model.encode(x)
            logits = model.decode(model.sample_latent(mean, aux, gen))
            k = x.shape[0]
            recon += float(reconstruction_loss(logits, x)) * k
            rate += float(model.rate_per_dim(mean, aux).sum()) * k
            n += k
    return {"rows": n, "reconstruction_nats": recon / n, "rate_nats": rate / n}


def held_out_record(model: Any, train_cfg: Any, device: Any, config: Any, rows: dict[str | None, tuple[Any, Any]]
                    ) -> dict[str, Any]:
    """The ``held_out`` block for a run trained on ``train_cfg.subset`` (see the module
    docstring). ``rows``: data and codes already built, keyed by subset (None: the full grid);
    missing entries are loaded/encoded here and added."""
    from dis_eval.encode import LazyCodes
    from pipelines.evaluate.data import load_eval_data
    from pipelines.evaluate.scoring import score_codes

    if getattr(model, "family", None) not in ("echo", "vae"):
        return {"undefined": f"model family {getattr(model, 'family', None)!r} has no rate or sample"}
    for subset in (train_cfg.subset, None):
        if subset not in rows:
            d = load_eval_data(train_cfg.data, subset, device)
            rows[subset] = (d, LazyCodes(model, d, batch_size=config.batch_size, device=device, compile=config.compile))
    kept_data, full = rows[train_cfg.subset][0], rows[None][0]
    in_subset = np.isin(full.indices, kept_data.indices, assume_unique=True)
    rng = np.random.RandomState(config.seed)
    batch = max(HELD_OUT_BATCH, int(train_cfg.batch_size))
    out: dict[str, Any] = {"subset": train_cfg.subset, "kept_rows": int(in_subset.sum()),
                           "dropped_rows": int((~in_subset).sum()), "rows_per_part_max": HELD_OUT_ROWS}
    for part, mask in (("kept", in_subset), ("dropped", ~in_subset)):
        pos = np.flatnonzero(mask)
        if len(pos) == 0:
            out[part] = None
            out[f"{part}_undefined"] = f"no {part} rows in this data"
            continue
        pick = np.sort(rng.choice(pos, size=min(HELD_OUT_ROWS, len(pos)), replace=False))
        out[part] = _losses(model, full, pick, batch, device, config.seed)
    primary = config.plan()[0][1]
    metrics = [m for m in HELD_OUT_METRICS if m in (primary.metrics or ())]
    scores: dict[str, Any] = {}
    for truth, subset in (("subset", train_cfg.subset), ("full", None)):
        if not metrics:
            break
        cfg = type(primary)(**{**primary.as_dict(), "metrics": tuple(metrics), "protocol": truth, "baselines": False,
                               "settings": {m: primary.settings[m] for m in metrics if m in primary.settings}})
        d, codes = rows[subset]
        res = score_codes(d, codes, cfg.resolved())
        scores[truth] = {"headline": res["headline"], "rows": len(d)}
    out["scores"] = scores
    out["scores_convention"] = {"representation": primary.representation, "seed": primary.seed,
                                "repeats": primary.repeats, "metrics": metrics}
    return out
