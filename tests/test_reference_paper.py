"""The paper's Table 2 as shipped: the identified setting (beta = 1, lambda = 0) answers with
the printed headline numbers; everything else is None, never a guess."""

from __future__ import annotations

import pytest

from dis_eval.reference.paper import PAPER_TABLE2, paper_value


@pytest.mark.parametrize(("model", "data", "score", "want"), [
    ("echo", "independent", "factor_vae", 0.83), ("beta_vae", "independent", "factor_vae", 0.65),
    ("echo", "independent", "mig", 0.16), ("beta_vae", "independent", "mig", 0.07),
    ("echo", "dependent", "factor_vae", 0.70), ("vae_tc", "dependent", "factor_vae", 0.60),
    ("echo_tc", "dependent", "mig", 0.11), ("beta_vae", "dependent", "mig", 0.08),
])
def test_headline_values(model: str, data: str, score: str, want: float) -> None:
    assert paper_value(model, data, score) == want


def test_unidentified_settings_and_models_have_no_value() -> None:
    assert paper_value("echo", "independent", "factor_vae", beta=4.0) is None
    assert paper_value("echo", "independent", "factor_vae", lam=2.0) is None
    assert paper_value("factor_vae", "independent", "factor_vae") is None
    assert paper_value("echo", "independent", "dci") is None


def test_rows_one_and_four_repeat_the_shared_setting() -> None:
    assert len(PAPER_TABLE2) == 7
    ind = [k for k in PAPER_TABLE2[0].values if k[0] == "independent"]
    assert all(PAPER_TABLE2[0].values[k] == PAPER_TABLE2[3].values[k] for k in ind)
