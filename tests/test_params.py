"""The parameter-cell check: a bad value is named by the reader's variable, where it is set."""
import re

import pytest

from ttsbook import BadValue
from ttsbook.params import check_params

GOOD = dict(SCALE="cpu", SEED=0, N_DIMS=20, M_TEST=40, K_MAX=12, NS=(10, 20), NS_LONG=(5,),
            BUDGETS=(1, 2, 3), ALPHA=1.0, TARGET_ALPHA=0.0, EPS=1e-2, EPS_HARD=0.05,
            THETA=1.0, TOL=0.3, NOISE=0.1, SIGMAS=(0.0, 0.5), LEVELS=(1e-1, 1e-6),
            M_OVER_D=(1.5, 2), COST_PASS=1.5, FEW=2, EVAL_SEED=1)


def test_good_values_pass_and_every_rule_name_is_checked():
    checked = check_params(dict(GOOD, TRAIN=object(), lowercase=-1, _HIDDEN=-1))
    assert sorted(checked) == sorted(GOOD)


@pytest.mark.parametrize("name, bad", [
    ("N_DIMS", -10), ("N_DIMS", 0), ("N_DIMS", 2.5), ("N_DIMS", True), ("M_TEST", "40"),
    ("K_MAX", None), ("SEED", -1), ("SEED", 2**64), ("EVAL_SEED", 1.0), ("SCALE", "tpu"),
    ("NS", ()), ("NS", (10, -20)), ("NS_LONG", 5), ("BUDGETS", [1, 0]), ("ALPHA", -1.0),
    ("ALPHA", float("nan")), ("EPS", 0.0), ("EPS_HARD", float("inf")), ("THETA", 2.0),
    ("TOL", 1.5), ("NOISE", -0.1), ("SIGMAS", (0.1, -0.5)), ("LEVELS", (0.1, 0)),
    ("COST_PASS", 0), ("FEW", 0), ("M_OVER_D", (1.5, -2))])
def test_bad_value_names_the_readers_variable(name, bad):
    with pytest.raises(BadValue, match=rf"^parameter {name} must be .*, got {re.escape(repr(bad))}$") as err:
        check_params(dict(GOOD, **{name: bad}))
    assert err.value.arg == name
