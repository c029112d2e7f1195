"""Running grids of GPT training runs on many workers: a local pool, a SLURM cluster, in-process.

The grid itself, a sweep's runs, which are done and the collected results table, is
:mod:`ttsbook.runs.sweep`'s; here each unfinished run becomes one job (:func:`run_job`) that trains
it (resuming from its atomic checkpoint) and scores it on every evaluation setting.

Executors: ``local`` (a process pool: one worker per visible GPU, or one per CPU core with one
thread each), ``slurm`` (a submitit job array; submitit is imported only to submit) and
``debug`` (in-process, in order). A SLURM job that is preempted or times out is requeued by
submitit through :meth:`TrainJob.checkpoint`, and resumes from the run's last checkpoint.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import torch

from ..checks import BadValue, check_choice, check_int, check_name, param
from ..utils import atomic_write, resolve_device
from .options import options
from .run import RunConfig, RunDir, train_run
from .score import EvalConfig, evaluate_runs, score_file
from .sweep import Sweep, collect, pending

EXECUTORS = ("local", "slurm", "debug")


@dataclass
class LaunchConfig:
    """Where and how a sweep runs; every field is an option of ``python -m ttsbook sweep``."""

    executor: str = param("local", "local: a process pool (one run per visible GPU, else one per "
                                   "CPU core, one thread each); slurm: a submitit job array; "
                                   "debug: in-process, one after the other", choices=EXECUTORS)
    workers: int | None = param(None, "local: at most this many runs at once (default: one per "
                                      "GPU or CPU core)", parse=int, metavar="N")
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
        check_int(self.time, "time")
        check_int(self.gpus, "gpus", low=0)
        check_int(self.requeues, "requeues", low=0)
        if self.partition is not None:
            check_name(self.partition, "partition")
        for name in ("workers", "cpus", "array_parallelism"):
            if getattr(self, name) is not None:
                check_int(getattr(self, name), name)


LAUNCH_OPTIONS = options(LaunchConfig)


# ---------------------------------------------------------------- one job
def run_job(record: dict, root: str, evals: list, device: str = "auto",
            threads: int | None = None) -> str:
    """Train the run of ``record`` (a :meth:`RunConfig.record`; resuming from its checkpoint, a
    finished run is skipped), then score it on each of ``evals`` (dicts of :class:`EvalConfig`
    fields) not yet scored. Returns the run's directory name."""
    config = RunConfig(**record)
    path = train_run(config, root, device, resume=True, threads=threads)
    for fields in evals:
        target = score_file(path, EvalConfig(**fields))
        with path.lock():  # another sweep may be scoring it: wait, then it is there
            if target.exists():
                continue
            df = evaluate_runs([path], **fields, device=device, threads=threads)
            df = df.assign(run_id=config.run_id(), n_prompts=fields["n_prompts"],
                           eval_seed=fields["seed"])
            atomic_write(target, lambda tmp: df.to_csv(tmp, index=False))  # like checkpoints
    return path.name


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


def local_slots(device: torch.device, workers: int | None = None) -> list[dict]:
    """The environment of each local worker: one per visible GPU (``CUDA_VISIBLE_DEVICES``) on
    CUDA, else one per CPU core (or ``workers``) with one thread each."""
    if device.type == "cuda":
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        gpus = visible.split(",") if visible else [str(i) for i in range(torch.cuda.device_count())]
        return [{"CUDA_VISIBLE_DEVICES": g.strip()} for g in gpus][:workers]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [{"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}] * (workers or cores or 1)


_STOP = None  # in a local worker: set once the sweep is interrupted


def _init_worker(slots, stop) -> None:
    global _STOP
    _STOP = stop
    os.environ.update(slots.get())
    if os.environ.get("OMP_NUM_THREADS") == "1":
        torch.set_num_threads(1)


def _pool_job(*args) -> tuple[str | None, str | None]:
    """:func:`run_job` in a worker: ``(name, None)``, or ``(None, error)`` as one line of text."""
    if _STOP is not None and _STOP.is_set():  # queued before a Ctrl-C: do not start it
        return None, "cancelled"
    try:
        return run_job(*args), None
    except BaseException as err:  # noqa: BLE001 (text pickles; RunInterrupted would not)
        return None, f"{type(err).__name__}: {err}"


def run_local(records: list, root, evals: list, device: torch.device,
              workers: int | None = None) -> dict:
    """Run the jobs on a pool of spawned worker processes (:func:`local_slots`).
    Returns ``{record index: error}`` for the jobs that failed; Ctrl-C cancels the rest."""
    import multiprocessing

    slots, context = local_slots(device, workers), multiprocessing.get_context("spawn")
    size = max(1, min(len(slots), len(records)))
    queue, stop = context.Queue(), context.Event()
    for slot in slots[:size]:
        queue.put(slot)
    job = ("cuda", None) if device.type == "cuda" else ("cpu", 1)
    pool = ProcessPoolExecutor(size, mp_context=context, initializer=_init_worker,
                               initargs=(queue, stop))
    failures = {}
    try:
        futures = {pool.submit(_pool_job, r, str(root), evals, *job): i
                   for i, r in enumerate(records)}
        for future in as_completed(futures):
            if error := future.result()[1]:
                failures[futures[future]] = error
    except KeyboardInterrupt:  # the workers' runs got it too: each saves a checkpoint
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return failures


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
