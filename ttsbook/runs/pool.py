"""One job of a sweep, and a local pool of worker processes that run jobs and die with it.

A job (:func:`run_job`) trains one run (resuming from its checkpoint; a finished run is
skipped) and scores it on every evaluation setting. :func:`run_local` runs jobs on spawned
workers, one per visible GPU or per CPU core, each fed one job at a time through its own pipe,
so the pool always knows which run a worker holds: a worker that dies (killed, out of memory)
fails that run alone, by name, and a fresh worker takes the next one. Workers die with their
parent: the kernel kills them when it exits (Linux ``PR_SET_PDEATHSIG``), and a watchdog thread
notices an orphaned worker elsewhere.
"""
from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from multiprocessing.connection import wait

import torch

from .config import RunConfig
from .run import train_run
from .score import EvalConfig, evaluate_runs, score_file
from ..utils import atomic_write


def run_job(record: dict, root: str, evals: list, device: str = "auto",
            threads: int | None = None) -> str:
    """Train the run of ``record`` (a :meth:`RunConfig.record`; resuming from its checkpoint, a
    finished run is skipped), then score it on each of ``evals`` (dicts of :class:`EvalConfig`
    fields) not yet scored. Returns the run's folder name."""
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


def local_slots(device: torch.device, workers: int | None = None) -> list[dict]:
    """The environment of each local worker: one per visible GPU (``CUDA_VISIBLE_DEVICES``) on
    CUDA, else one per CPU core (or ``workers``) with one thread each."""
    if device.type == "cuda":
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        gpus = visible.split(",") if visible else [str(i) for i in range(torch.cuda.device_count())]
        return [{"CUDA_VISIBLE_DEVICES": g.strip()} for g in gpus][:workers]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [{"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}] * (workers or cores or 1)


# ---------------------------------------------------------------- in a worker
def die_with_parent(parent: int) -> None:
    """End this process when ``parent`` does: at once on Linux (the kernel sends SIGKILL,
    ``prctl(PR_SET_PDEATHSIG)``), within a second elsewhere (a watchdog thread)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass

    def watch():
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)
    if os.getppid() != parent:  # the parent died before the prctl
        os._exit(1)
    threading.Thread(target=watch, daemon=True).start()


def _work(slot: dict, parent: int, conn, *args) -> None:
    """A worker: runs each job it receives (a record; ``None``: stop), answers
    ``(name, None)`` or ``(None, error)``; Ctrl-C (sent to the whole terminal) ends it after
    its run saved a checkpoint."""
    die_with_parent(parent)
    os.environ.update(slot)
    if slot.get("OMP_NUM_THREADS") == "1":
        torch.set_num_threads(1)
    try:
        while (record := conn.recv()) is not None:
            try:
                conn.send((run_job(record, *args), None))
            except Exception as err:  # noqa: BLE001 (one line of text for the summary)
                conn.send((None, f"{type(err).__name__}: {err}"))
    except KeyboardInterrupt:
        conn.send((None, "interrupted (a checkpoint was saved)"))


# ---------------------------------------------------------------- the pool
class _Worker:
    """A spawned worker process, its pipe and the index of the job it holds (``None``)."""

    def __init__(self, context, slot: dict, args: tuple):
        self.slot, self.job = slot, None
        self.conn, theirs = context.Pipe()
        self.process = context.Process(target=_work, args=(slot, os.getpid(), theirs, *args),
                                       daemon=True)
        self.process.start()
        theirs.close()

    def answer(self) -> tuple | None:
        """The worker's ``(name, error)`` for its job, or ``None`` if it died instead."""
        try:
            return self.conn.recv() if self.conn.poll() else None
        except (EOFError, OSError):
            return None

    def death(self) -> str:
        self.process.join()
        code = self.process.exitcode
        how = f"killed by {signal.Signals(-code).name}" if code and code < 0 \
            else f"exited with status {code}"
        return f"its worker process was {how} (out of memory, or killed); it resumes from its " \
               "last checkpoint when the sweep runs again"


def run_local(records: list, root, evals: list, device: torch.device,
              workers: int | None = None) -> dict:
    """Run the jobs on spawned worker processes (:func:`local_slots`); a worker that dies fails
    its job alone and is replaced. Returns ``{record index: error}`` for the jobs that failed;
    Ctrl-C stops every worker once its run saved a checkpoint, then raises."""
    context, slots = multiprocessing.get_context("spawn"), local_slots(device, workers)
    args = (str(root), evals, *(("cuda", None) if device.type == "cuda" else ("cpu", 1)))
    queue, failures = deque(range(len(records))), {}
    pool = [_Worker(context, s, args) for s in slots[:max(1, min(len(slots), len(records)))]]

    def give(w: _Worker) -> None:
        w.job = queue.popleft() if queue else None
        w.conn.send(None if w.job is None else records[w.job])
    try:
        for w in pool:
            give(w)
        while busy := [w for w in pool if w.job is not None]:
            ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy])
            for i, w in enumerate(pool):
                if w.job is None or not {w.conn, w.process.sentinel} & set(ready):
                    continue
                if (answer := w.answer()) is None:  # it died holding its job
                    failures[w.job] = w.death()
                    pool[i] = w = _Worker(context, w.slot, args)
                elif answer[1]:
                    failures[w.job] = answer[1]
                give(w)
    except KeyboardInterrupt:  # the workers got it too: each saves a checkpoint and ends
        for w in pool:
            w.process.join(timeout=60)
        raise
    for w in pool:
        w.process.join(timeout=10)
    return failures
