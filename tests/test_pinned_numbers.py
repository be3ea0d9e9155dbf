"""The same config and seed give the same numbers as when they were recorded: a small CPU run per
model (Echo, beta-VAE, FactorVAE) on the real-image fixture, trained and scored through the
command line by ``tests.record_pins.pinned_run``, the procedure that recorded
tests/data/pinned_small_runs.json (``python -m tests.record_pins``; its "recorded" entry names
the commit, the CPU's instruction set and the thread count).

Re-recorded after Echo's member gather got a fixed summation order in its backward
(dis_eval.models.echo.gather_members), at the recording machine's default thread count (2),
CPU capability AVX2. Against the previous recording (commit 2c5a491, before the renovation) every
weight, optimiser and generator tensor and every score under the mean representation is
unchanged, bit for bit (at batch 16 the old gather's backward was too small to run on several
threads); three continuous Echo scores under the sampled representation (IRS per latent, the
Gaussian Wasserstein correlation and its normalised form) moved in the last bits: the old values
came from a numpy copy of the Echo noise whose summation order differed. Re-recorded once more
when DCI's trees became direct builds: only DCI's ``fit`` record gained ``trees``; every number
stayed as it was. Re-record on purpose
only (a change of random streams or summation order), with the one command above, and say so in
the commit.

Checked: every tensor of checkpoint.pt (model, optimisers, discriminator, generators) and
model.pt bit for bit, and every score of metrics.json exactly, under the mean and the sampled
representation. Bit identity holds per CPU instruction set and thread count (reductions split
their work by thread): where either differs from the recording's, the test says so and checks
weights and scores to a tolerance instead.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from tests.record_pins import PINNED_MODELS, PINS_FILE, pinned_run, recording_conditions

PINS = json.loads(PINS_FILE.read_text())
HERE = recording_conditions()
SAME_MACHINE = all(HERE[k] == PINS["recorded"][k] for k in ("cpu_capability", "threads"))


def _same_tensors(got: dict[str, list], want: dict[str, list], what: str) -> None:
    assert set(got) == set(want), what
    for key, (sig, total) in want.items():
        if SAME_MACHINE:
            assert got[key][0] == sig, f"{what}{key} differs bit-wise from the recorded run"
        elif total is not None:
            assert math.isclose(got[key][1], total, rel_tol=1e-3, abs_tol=1e-6), f"{what}{key}"


def _close(a: Any, b: Any, rel: float) -> bool:
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(x, y, rel) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=rel, abs_tol=rel * 1e-3)
    return a == b


@pytest.mark.parametrize("model", PINNED_MODELS)
def test_same_seed_same_numbers_as_recorded(model: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    if not SAME_MACHINE:
        print(f"CPU capability / threads {HERE['cpu_capability']} / {HERE['threads']} are not the recording's "
              f"{PINS['recorded']['cpu_capability']} / {PINS['recorded']['threads']}: weights and scores "
              "checked to a tolerance, not bit-wise")
    want = PINS["runs"][model]
    got = pinned_run(model, tmp_path / model)
    _same_tensors(got["checkpoint"], want["checkpoint"], "checkpoint.pt")
    _same_tensors(got["model_pt"], want["model_pt"], "model.pt")
    for rep, scores in want["scores"].items():
        assert set(got["scores"][rep]) == set(scores)
        for metric, fields in scores.items():
            for key, value in fields.items():
                have = got["scores"][rep][metric][key]
                if SAME_MACHINE:
                    assert have == value, (rep, metric, key)
                else:
                    assert _close(have, value, 1e-2), (rep, metric, key, have, value)
    capsys.readouterr()
