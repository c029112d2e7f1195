"""``python -m ttsbook``: help, clear errors with exit code 2, train then evaluate to a CSV."""
import pandas as pd
import pytest

from ttsbook.__main__ import main
from ttsbook.runs import RunConfig, load_config, run_dir, train_argv


def run_cli(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


def test_help_lists_every_option(capsys):
    code, out, _ = run_cli(["train", "--help"], capsys)
    assert code == 0
    for option in ("--preset", "--pos", "--n-points", "--train-cov", "--cot-steps", "--steps",
                   "--batch-size", "--lr", "--seed", "--out", "--resume", "--device", "power_raw:A"):
        assert option in out
    code, out, _ = run_cli(["evaluate", "--help"], capsys)
    assert code == 0
    for option in ("RUN_DIR", "--test-cov", "--m", "--k-max", "--n-prompts", "--seed", "--out"):
        assert option in out


@pytest.mark.parametrize("argv, words", [
    (["train", "--preset", "huge"], ["--preset", "invalid choice", "'cpu'", "'paper'"]),
    (["train", "--train-cov", "powr:1"], ["--train-cov", "bad covariance spec", "power_raw:A"]),
    (["train", "--n-points", "9:3"], ["--n-points", "LO:HI"]),
    (["train", "--lr", "-1"], ["--lr", "positive float"]),
    (["train", "--device", "tpu"], ["--device", "cuda"]),
    (["train", "--steps", "10", "--warmup", "50"], ["warmup"]),
    (["fit"], ["invalid choice", "train", "evaluate"]),
])
def test_bad_options_exit_2_with_a_clear_message(argv, words, capsys):
    code, _, err = run_cli(argv, capsys)
    assert code == 2
    for word in words:
        assert word in err


def test_train_then_evaluate_writes_a_tidy_csv(tmp_path, capsys):
    argv = ["train", "--n-points", "6", "--cot-steps", "2", "--steps", "3", "--batch-size", "4",
            "--warmup", "1", "--out", str(tmp_path / "runs"), "--device", "cpu"]
    assert main(argv) == 0
    (run,) = (tmp_path / "runs").iterdir()
    assert (run / "done").exists()
    csv = tmp_path / "out" / "errors.csv"
    assert main(["evaluate", str(run), "--m", "7", "--k-max", "3", "--n-prompts", "50",
                 "--test-cov", "power:1.0", "--out", str(csv)]) == 0
    df = pd.read_csv(csv)
    tidy = ["predictor", "k", "mean", "ci_low", "ci_high", "median"]  # ttsbook.evaluate's columns
    assert list(df.columns[:6]) == tidy
    assert df["k"].tolist() == [1, 2, 3] and (df["test_cov"] == "power:1.0").all()
    assert (df["m"] == 7).all() and (df["train_n"] == 6).all() and (df["run"] == run.name).all()
    assert (df["ci_low"] <= df["mean"]).all() and (df["mean"] <= df["ci_high"]).all()
    code, _, err = run_cli(["evaluate", str(tmp_path), "--out", str(csv)], capsys)
    assert code == 2 and "not a finished run" in err


def test_train_argv_reproduces_the_run_config(tmp_path):
    """The command a chapter prints (``train_argv``) trains exactly the run it names."""
    config = RunConfig(model={"pos": "learned"}, n_points=[3, 5], train_cov="power:1.0", cot_steps=2,
                       steps=2, batch_size=4, warmup=1, seed=3)
    assert main([*train_argv(config), "--out", str(tmp_path)]) == 0
    assert (run_dir(config, tmp_path) / "done").exists()
    assert load_config(run_dir(config, tmp_path)) == config
