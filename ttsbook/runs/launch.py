"""Running grids of GPT training runs on many workers: a local pool, a SLURM cluster, in-process.

The grid itself, a sweep's runs, which are done and the collected results table, is
:mod:`ttsbook.runs.sweep`'s; here each unfinished run becomes one job
(:func:`~ttsbook.runs.pool.run_job`) that trains it (resuming from its atomic checkpoint) and
scores it on every evaluation setting.

Executors: ``local`` (:mod:`ttsbook.runs.pool`: one worker per visible GPU, or one per CPU core
with one thread each; a worker that dies fails its run alone), ``slurm`` (a submitit job array;
submitit is imported only to submit) and ``debug`` (in-process, in order). A SLURM job that is
preempted or times out is requeued by submitit through :meth:`TrainJob.checkpoint`, and resumes
from the run's last checkpoint.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..checks import BadValue, check_choice, check_int, check_name, param
from ..utils import resolve_device
from .options import options
from .pool import run_job, run_local
from .run import RunDir
from .sweep import Sweep, collect, pending

EXECUTORS = ("local", "slurm", "debug")


@dataclass
class LaunchConfig:
    """Where and how a sweep runs; every field is an option of ``python -m ttsbook sweep``."""

    executor: str = param("local", "local: a process pool (one run per visible GPU, else one per "
                                   "CPU core, one thread each); slurm: a submitit job array; "
                                   "debug: in-process, one after the other", choices=EXECUTORS)
    workers: int | None = param(None, "local: at most this many runs at once, at most the CPU "
                                      "cores (default: one per GPU or CPU core)", parse=int,
                                metavar="N")
    partition: str | None = param(None, "slurm: partition (default: the cluster's)", parse=str)
    time: int = param(240, "slurm: time limit of one job in minutes; a job that runs out is "
                           "requeued and resumes from its checkpoint", metavar="MIN")
    gpus: int = param(1, "slurm: GPUs per job (0: CPU jobs)", metavar="N")
    cpus: int | None = param(None, "slurm: CPUs per job (default: the cluster's)", parse=int,
                             metavar="N")
    array_parallelism: int | None = param(None, "slurm: at most this many jobs of the array at "
                                                "once (default: all)", parse=int, metavar="N")
    requeues: int = param(10, "slurm: how many times a job that timed out is requeued "
                              "(preempted jobs always are)", metavar="N")

    def __post_init__(self):
        check_choice(self.executor, "executor", EXECUTORS)
        check_int(self.time, "time", high=10**6)
        check_int(self.gpus, "gpus", low=0, high=1024)
        check_int(self.requeues, "requeues", low=0, high=10**4)
        if self.partition is not None:
            check_name(self.partition, "partition")
        highs = {"workers": os.cpu_count() or 1, "cpus": 10**5, "array_parallelism": 10**6}
        for name, high in highs.items():  # workers: one core each at least
            if getattr(self, name) is not None:
                check_int(getattr(self, name), name, high=high)


LAUNCH_OPTIONS = options(LaunchConfig)


# ---------------------------------------------------------------- one job
class TrainJob:
    """One run of a sweep as a submitit job: ``TrainJob(root, evals, device)(record)`` is
    :func:`run_job`. It is checkpointable in submitit's sense (the contract of
    ``submitit.helpers.Checkpointable``, without importing submitit before a submission): on
    preemption or timeout submitit calls :meth:`checkpoint`, requeues the same job, and the
    job resumes from the run's last atomic checkpoint (at most ``ckpt_every`` steps redone)."""

    def __init__(self, root: str, evals: list, device: str = "auto"):
        self.root, self.evals, self.device = str(root), list(evals), device

    def __call__(self, record: dict) -> str:
        return run_job(record, self.root, self.evals, self.device)

    def checkpoint(self, record: dict):
        from submitit.helpers import DelayedSubmission
        return DelayedSubmission(self, record)  # the same job again: it resumes


# ---------------------------------------------------------------- executors
def submitit_installed() -> bool:
    return importlib.util.find_spec("submitit") is not None


def run_debug(records: list, root, evals: list, device: torch.device,
              threads: int | None = None) -> dict:
    """Run the jobs one after the other in this process (errors propagate)."""
    for record in records:
        run_job(record, str(root), evals, str(device), threads)
    return {}


def slurm_plan(n_jobs: int, name: str, launch: LaunchConfig) -> dict:
    """What the ``slurm`` executor hands submitit, built without importing it: ``executor``
    (``AutoExecutor``'s keywords), ``parameters`` (``update_parameters``') and ``array`` (the
    job array of the ``n_jobs`` runs as submitit writes ``#SBATCH --array``)."""
    parallelism = launch.array_parallelism or n_jobs
    parameters = {"name": f"ttsbook-{name}", "timeout_min": launch.time, "nodes": 1,
                  "tasks_per_node": 1, "gpus_per_node": launch.gpus,
                  "slurm_array_parallelism": parallelism}
    parameters |= {"slurm_partition": launch.partition} if launch.partition else {}
    parameters |= {"cpus_per_task": launch.cpus} if launch.cpus else {}
    return {"executor": {"cluster": "slurm", "slurm_max_num_timeout": launch.requeues},
            "parameters": parameters, "array": f"0-{n_jobs - 1}%{min(n_jobs, parallelism)}"}


def submit_slurm(records: list, root, evals: list, plan: dict) -> list:
    """Submit the jobs as one submitit job array (logs in ``root/submitit``); returns the jobs."""
    if not submitit_installed():
        raise BadValue("executor", "the 'slurm' executor needs submitit, which is not installed: "
                                   "pip install 'ttsbook[cluster]'; without it: local, debug "
                                   "(--dry-run shows the SLURM plan)")
    import submitit

    executor = submitit.AutoExecutor(folder=Path(root) / "submitit", **plan["executor"])
    executor.update_parameters(**plan["parameters"])
    device = "cuda" if plan["parameters"]["gpus_per_node"] else "cpu"
    return executor.map_array(TrainJob(str(root), evals, device), records)


def launch(sweep: Sweep, root: str | Path, config: LaunchConfig | None = None,
           device: str | torch.device = "auto", threads: int | None = None) -> dict:
    """Train and score the unfinished runs of ``sweep`` under ``root`` on ``config.executor``.

    Returns ``todo`` (the runs launched), ``failures`` (run name -> one line of error) and
    ``jobs`` (the submitit jobs; ``slurm`` only returns once they are submitted). After
    ``local`` and ``debug`` the results table is collected (:func:`collect`); after ``slurm``
    launch the same sweep again once the jobs are done: it finds nothing to run and collects.
    """
    config, device = config or LaunchConfig(), resolve_device(device)
    todo = pending(sweep, root)
    records, evals = [c.record() for c in todo], [dataclasses.asdict(e) for e in sweep.evals]
    failures, jobs = {}, []
    if todo and config.executor == "slurm":
        jobs = submit_slurm(records, root, evals, slurm_plan(len(todo), sweep.name, config))
    elif todo and config.executor == "local":
        failed = run_local(records, root, evals, device, config.workers)
        failures = {RunDir.of(todo[i], root).name: error for i, error in sorted(failed.items())}
    elif todo:
        run_debug(records, root, evals, device, threads)
    if config.executor != "slurm" or not todo:
        collect(sweep, root)
    return {"todo": todo, "failures": failures, "jobs": jobs}
