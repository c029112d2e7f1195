"""``python -m ttsbook sweep``: grids of tiny runs on the local, debug and SLURM executors."""
import dataclasses
import importlib

import pandas as pd
import pytest

import ttsbook.runs.run
from ttsbook.runs import RunConfig, RunDir, evaluate_runs
from ttsbook.runs.cli import main
from ttsbook.runs.launch import LaunchConfig, TrainJob, launch, slurm_plan
from ttsbook.runs.sweep import collect, expand, pending, read_results, read_sweep, swept_scores

cluster = importlib.import_module("ttsbook.runs.launch")  # the module; ttsbook.runs.launch is its function
pool = importlib.import_module("ttsbook.runs.pool")

# A 2 x 2 grid of tiny runs (n x training seed), each a fraction of a second on one CPU thread.
TINY_TOML = """
seeds = [0, 1]
[base]
n_dims = 2
n_layer = 1
n_head = 2
n_embd = 16
cot_steps = 2
steps = 12
batch_size = 8
warmup = 1
ckpt_every = 4
[grid]
n_points = [3, 4]
[eval]
m = 4
n_steps = 3
n_prompts = 50
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("sweep") / "tiny.toml"
    path.write_text(TINY_TOML)
    return path


@pytest.fixture(scope="module")
def swept(tiny, tmp_path_factory):
    """The 2 x 2 grid run through the debug executor: (sweep, root)."""
    name, spec = read_sweep(tiny)
    sweep, root = expand(spec, name=name), tmp_path_factory.mktemp("debug")
    assert launch(sweep, root, LaunchConfig(executor="debug"), device="cpu")["failures"] == {}
    return sweep, root


def test_the_grid_is_the_union_of_blocks_times_seeds(tiny):
    name, spec = read_sweep(tiny)
    sweep = expand(spec, name=name)
    assert name == "tiny" and len(sweep.runs) == 4 and sweep.axes == ("n_points", "seed")
    assert {(c.n_points, c.train.seed) for c in sweep.runs} == {(3, 0), (3, 1), (4, 0), (4, 1)}
    assert [dataclasses.asdict(e) for e in sweep.evals] == [
        {"test_cov": "isotropic", "m": 4, "n_steps": 3, "n_prompts": 50, "seed": 1}]
    # --grid replaces the file's axis; --seeds its seeds; text values use the option's parser
    wide = expand(spec, ["n_points=3:5,6", "pos=learned"], seeds=[7], evals={"m": 6})
    assert [c.n_points for c in wide.runs] == [[3, 5], 6] and {c.train.seed for c in wide.runs} == {7}
    assert {c.model.pos for c in wide.runs} == {"learned"} and wide.evals[0].m == 6
    one = expand(None, ["train_cov=missing:1,2:0.1,isotropic", "steps=5"])
    assert [c.train_cov for c in one.runs] == ["missing:1,2:0.1", "isotropic"]


def test_local_and_debug_executors_end_in_the_same_table(tiny, swept, tmp_path, capsys):
    sweep, root = swept
    table = read_results(root / "tiny.csv")
    assert len(table) == 4 * 3 and table["run_id"].nunique() == 4 and set(table["seed"]) == {0, 1}
    assert list(table.columns[:6]) == ["predictor", "k", "mean", "ci_low", "ci_high", "median"]
    as_json = pd.read_json(root / "tiny.json", dtype={"run_id": str, "run": str, "predictor": str})
    pd.testing.assert_frame_equal(as_json, table, check_exact=False, rtol=1e-12)
    code = main(["sweep", str(tiny), "--executor", "local", "--workers", "2", "--device", "cpu",
                 "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0 and "4 runs x 1 evaluation settings; 0 done, 4 to run" in out
    pd.testing.assert_frame_equal(read_results(tmp_path / "tiny.csv"), table)
    code = main(["sweep", str(tiny), "--out", str(tmp_path), "--device", "cpu"])
    assert code == 0 and "4 done, 0 to run" in capsys.readouterr().out


def test_a_killed_sweep_relaunched_trains_only_the_unfinished_runs(tiny, swept, tmp_path, monkeypatch):
    """Killed (as submitit's requeue exits) after a checkpoint of the third run: on relaunch the
    two finished runs are untouched, the third resumes, the fourth trains; same table."""
    sweep, straight = swept
    trained = []

    def exit_after_first_checkpoint(trainer):  # runs after the checkpoint (ckpt_every = 4)
        if trainer.steps_done == 4:
            raise SystemExit(-1)

    def train_run(config, root, *args, **kwargs):
        trained.append(config.name())
        hooks = [exit_after_first_checkpoint] if len(trained) == 3 else []
        return ttsbook.runs.run.train_run(config, root, *args, hooks=hooks, **kwargs)
    monkeypatch.setattr(pool, "train_run", train_run)
    with pytest.raises(SystemExit):
        launch(sweep, tmp_path, LaunchConfig(executor="debug"), device="cpu")
    left = [c.name() for c in pending(sweep, tmp_path)]
    assert left == trained[2:] + [sweep.runs[3].name()]
    assert RunDir(tmp_path / left[0]).checkpoint_file.exists() and not (tmp_path / left[1]).exists()
    finished = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/model.pt")}
    assert len(finished) == 2
    trained.clear()
    launch(sweep, tmp_path, LaunchConfig(executor="debug"), device="cpu")
    assert trained == left and all(p.stat().st_mtime_ns == t for p, t in finished.items())
    pd.testing.assert_frame_equal(read_results(tmp_path / "tiny.csv"), read_results(straight / "tiny.csv"))


def test_chapters_read_a_run_s_scores_from_the_table(swept):
    sweep, root = swept
    run, spec = RunDir.of(sweep.runs[0], root), sweep.evals[0]
    want = evaluate_runs([run], **dataclasses.asdict(spec), device="cpu")
    pd.testing.assert_frame_equal(swept_scores(root / "tiny.csv", run, spec), want)
    assert swept_scores(root / "absent.csv", run, spec) is None
    assert swept_scores(root / "tiny.csv", run, dataclasses.replace(spec, n_prompts=51)) is None
    assert swept_scores(root / "tiny.csv", run, dataclasses.replace(spec, n_steps=2)) is not None
    assert collect(sweep, root, write=False).equals(read_results(root / "tiny.csv"))


def test_the_slurm_plan_without_submitting(tiny, tmp_path, capsys):
    config = LaunchConfig(executor="slurm", partition="gpu", time=300, array_parallelism=2, cpus=4)
    plan = slurm_plan(6, "e3e4_paper", config)
    assert plan["executor"] == {"cluster": "slurm", "slurm_max_num_timeout": 10}
    assert plan["parameters"] == {"name": "ttsbook-e3e4_paper", "timeout_min": 300, "nodes": 1,
                                  "tasks_per_node": 1, "gpus_per_node": 1, "cpus_per_task": 4,
                                  "slurm_partition": "gpu", "slurm_array_parallelism": 2}
    assert plan["array"] == "0-5%2" and slurm_plan(3, "x", LaunchConfig())["array"] == "0-2%3"
    code = main(["sweep", "e3e4_paper", "--executor", "slurm", "--array-parallelism", "4",
                 "--dry-run", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0 and "6 runs x 2 evaluation settings; 0 done, 6 to run (300,000 training steps)" in out
    assert "--array=0-5%4" in out and "'gpus_per_node': 1" in out and not list(tmp_path.glob("*/"))


def test_the_slurm_job_requeues_itself_and_submitit_accepts_the_plan(tmp_path, monkeypatch):
    """Only with the cluster extra installed (submitit); a fake ``srun`` stands in for SLURM."""
    submitit = pytest.importorskip("submitit")
    from submitit.slurm.slurm import _make_sbatch_string
    (tmp_path / "srun").write_text("#!/bin/sh\nexit 1\n")
    (tmp_path / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{__import__('os').environ['PATH']}")
    plan = slurm_plan(6, "e", LaunchConfig(executor="slurm", array_parallelism=2))
    executor = submitit.AutoExecutor(folder=tmp_path / "logs", **plan["executor"])
    executor.update_parameters(**plan["parameters"])
    sbatch = _make_sbatch_string(command="x", folder=tmp_path, map_count=6, **executor._executor.parameters)
    assert "#SBATCH --array=0-5%2" in sbatch and "#SBATCH --signal=USR2@90" in sbatch
    job = TrainJob(str(tmp_path), [], "cpu")
    again = job.checkpoint({"preset": "cpu"})
    assert again.function is job and again.args == ({"preset": "cpu"},)


def test_the_shipped_paper_sweep_holds_chapter_8_s_paper_runs():
    name, spec = read_sweep("e3e4_paper")
    sweep = expand(spec, name=name)
    train = dict(cot_steps=8, steps=50_000, batch_size=64, lr=1e-4, warmup=1_000)
    chapter = [RunConfig(preset="paper", model={"pos": pos}, n_points=n, train_cov=cov, **train)
               for n, cov, pos in [(20, "isotropic", "none"), (30, "isotropic", "none"),
                                   (40, "isotropic", "none"), (30, "power_raw:1.0", "none"),
                                   (40, "power_raw:1.0", "none"), ([20, 40], "isotropic", "learned")]]
    assert [c.run_id() for c in sweep.runs] == [c.run_id() for c in chapter]
    assert {(e.m, e.n_prompts, e.seed, e.n_steps, e.test_cov) for e in sweep.evals} == {
        (40, 20_000, 1, 20, "isotropic"), (20, 20_000, 1, 20, "isotropic")}


def test_every_bad_input_is_one_line(tiny, tmp_path, capsys, monkeypatch):
    broken = {"unknown": "[base]\nwidth = 3\n", "empty": "[grid]\nn_points = []\n",
              "toml": "[base\n", "key": "sweeps = [1]\n", "eval": "[grid]\nsteps = [5]\n[eval]\nm_test = 3\n"}
    for key, text in broken.items():
        (tmp_path / f"{key}.toml").write_text(text)
    out = ["--out", str(tmp_path / "runs")]
    cases = [  # (argv, the option named, words the message must hold)
        (["sweep", "--grid", "width=3,4"], "--grid", ["unknown field 'width'", "n_points", "pos"]),
        (["sweep", str(tmp_path / "unknown.toml")], "SWEEP", ["unknown field 'width'"]),
        (["sweep"], "--grid", ["empty grid", "sweep file"]),
        (["sweep", "--grid", "n_points="], "--grid", ["empty grid", "n_points"]),
        (["sweep", str(tmp_path / "empty.toml")], "SWEEP", ["empty grid", "n_points"]),
        (["sweep", "--grid", "steps=x"], "--grid", ["steps", "expected STEPS", "'x'"]),
        (["sweep", "--grid", "steps=10", "--grid", "warmup=50"], "--grid", ["below steps = 10"]),
        (["sweep", "--grid", "n_points"], "--grid", ["FIELD=V1,V2"]),
        (["sweep", "e3e4"], "SWEEP", ["no sweep file 'e3e4'", "e3e4_paper"]),
        (["sweep", str(tmp_path / "toml.toml")], "SWEEP", ["not valid TOML"]),
        (["sweep", str(tmp_path / "key.toml")], "SWEEP", ["unknown key(s) ['sweeps']", "seeds"]),
        (["sweep", str(tmp_path / "eval.toml")], "SWEEP", ["m_test", "n_steps"]),
        (["sweep", str(tiny), "--m", "0"], "--m", [">= 1"]),
        (["sweep", str(tiny), "--time", "0"], "--time", [">= 1"]),
        (["sweep", str(tiny), "--seeds", "a"], "--seeds", ["integers"]),
        (["sweep", str(tiny), "--executor", "ray"], "--executor", ["invalid choice", "'local'", "'slurm'"]),
    ]
    monkeypatch.setattr(cluster, "submitit_installed", lambda: False)
    monkeypatch.setattr("ttsbook.runs.cli.submitit_installed", lambda: False)
    cases.append((["sweep", str(tiny), "--executor", "slurm"], "--executor",
                  ["needs submitit", "pip install 'ttsbook[cluster]'", "local, debug"]))
    for argv, option, words in cases:
        try:
            code = main(argv + out)
        except SystemExit as stop:
            code = stop.code
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, (argv, code, err)
        assert option in err and all(w in err for w in words), (argv, err)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
