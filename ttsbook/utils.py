"""The few things every module shares: where to run and on how many threads, progress bars,
atomic checkpoints, writable folders and a Ctrl-C that waits for the end of a step."""
from __future__ import annotations

import dataclasses
import errno
import os
import pickle
import signal
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .checks import BadValue, check_int


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when present, else the CPU; ``"cpu"`` and ``"cuda[:i]"`` are checked
    (``BadValue`` naming ``device`` when CUDA is asked for but absent)."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise BadValue("device", "device must be 'auto', 'cpu' or 'cuda[:i]', "
                                 f"got {str(device) if device else device!r}") from None
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        why = ("this build of torch has no CUDA" if torch.version.cuda is None
               else "no such GPU is visible")
        raise BadValue("device", f"device {str(device)!r} is not available: {why} "
                                 f"(torch {torch.__version__}); use 'cpu' or 'auto'")
    return device


SMALL_MODEL = 1_000_000
"""Parameters below which a model trains on one CPU thread by default (see
:func:`thread_policy`)."""
_TORCH_THREADS = torch.get_num_threads()  # torch's own default, unless set before ttsbook's import


def threads_chosen() -> bool:
    """Whether the user chose the CPU threads: ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` set, or
    ``torch.set_num_threads`` called since ``ttsbook`` was imported."""
    return any(os.environ.get(v) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")) \
        or torch.get_num_threads() != _TORCH_THREADS


def check_threads(threads) -> int:
    """``threads`` if it is 1 .. the machine's CPU cores (more would only oversubscribe them;
    far more aborts the OpenMP runtime); else ``BadValue``."""
    return check_int(threads, "threads", high=os.cpu_count() or 1)


@contextmanager
def thread_policy(model: torch.nn.Module, device: torch.device, threads: int | None = None):
    """Run the block on ``threads`` CPU threads, then restore torch's setting.

    By default (``threads=None``) a small model (under ``SMALL_MODEL`` parameters) on the CPU
    gets one thread unless the user chose (:func:`threads_chosen`): its steps are too small to
    split, and a second thread halves its speed as soon as another process wants a core.
    (``torch.set_num_threads`` called before ``ttsbook`` is imported looks like torch's default;
    pass ``threads`` then.)
    """
    if threads is None and device.type == "cpu" and not threads_chosen() \
            and sum(p.numel() for p in model.parameters()) < SMALL_MODEL:
        threads = 1
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(check_threads(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def deferred_interrupt():
    """Within the block Ctrl-C (SIGINT) only raises a flag, so a loop can stop between steps.

    Yields ``requested() -> bool``; a second Ctrl-C raises ``KeyboardInterrupt`` at once. Off
    the main thread (where Python cannot catch signals) it changes nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    hits = []

    def handler(signum, frame):
        hits.append(signum)
        if len(hits) > 1:
            raise KeyboardInterrupt
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: bool(hits)
    finally:
        signal.signal(signal.SIGINT,
                      previous if previous is not None else signal.default_int_handler)


def writable_dir(path: str | Path, arg: str = "out") -> Path:
    """``path``, created if needed, once a file could be written in it; else ``BadValue(arg)``."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise BadValue(arg, f"cannot write to {path}: {err.strerror or err}") from None
    return path


def progress_disabled() -> bool:
    """Progress bars are off under CI, nbval and whenever ``TQDM_DISABLE`` is set."""
    return any(os.environ.get(k, "") not in ("", "0") for k in ("CI", "TQDM_DISABLE"))


def progress(iterable=None, **kwargs):
    """``tqdm.auto`` that stays silent under CI (see ``progress_disabled``)."""
    return tqdm(iterable, disable=progress_disabled(), **kwargs)


def config_dict(config) -> dict:
    """A dataclass config as a plain dict (what checkpoints store and compare)."""
    return dataclasses.asdict(config)


_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once: the permissions a plain open() would give a new file


def atomic_write(path: str | Path, save) -> Path:
    """``save(tmp)`` writes a temp file beside ``path``, then a rename puts it in place: a
    crash never leaves half a file at ``path``. The temp file's name is unique
    (``tempfile``), so writers of the same file never trip over each other's temp file; the
    last rename wins, whole."""
    path, tmp = Path(path), None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp's 0600 would hide a shared run from others
        save(Path(tmp))
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:  # read-only or full: an OSError naming ``path``
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        reason = getattr(err, "strerror", None) or str(err).splitlines()[0]
        raise OSError(getattr(err, "errno", None) or errno.EIO, reason, str(path)) from None
    except BaseException:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_save(payload: dict, path: str | Path) -> Path:
    """``torch.save`` of ``payload`` to ``path``, atomically (:func:`atomic_write`)."""
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def save_checkpoint(path: str | Path, model: torch.nn.Module, **extra) -> Path:
    """Write ``{config, state_dict, **extra}`` atomically (temp file, then rename).

    The model must carry a dataclass ``config``; an interrupted write never leaves a
    half-written checkpoint behind. Everything is stored as tensors and plain data
    (:func:`plain`), so it loads with ``weights_only=True``.
    """
    model = getattr(model, "_orig_mod", model)  # save the uncompiled module's weights
    payload = {"config": config_dict(model.config), "state_dict": model.state_dict(), **extra}
    return atomic_save(plain(payload), path)


def plain(value):
    """``value`` as what ``torch.load(..., weights_only=True)`` reads back: numpy scalars become
    Python numbers and numpy arrays tensors, inside dicts, lists and tuples."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    return torch.from_numpy(value) if isinstance(value, np.ndarray) else value


def load_payload(path: str | Path, map_location="cpu", arg: str = "checkpoint") -> dict:
    """What :func:`save_checkpoint` wrote to ``path``, read with ``weights_only=True``: tensors
    and plain data only, so a file that holds anything else is refused and never runs code.
    A missing, unreadable or refused file raises a one-line ``BadValue`` naming ``arg``."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise BadValue(arg, f"{path} is missing") from None
    except pickle.UnpicklingError as err:
        if "global" in f"{err} {err.__context__}".lower():  # an object: it could run code
            raise BadValue(arg, f"{path} holds objects other than tensors and plain data, so "
                                "it was not loaded (loading it could run code); use a file "
                                "ttsbook wrote, from a source you trust") from None
        raise BadValue(arg, f"{path} is unreadable (not a checkpoint file)") from None
    except (RuntimeError, EOFError, OSError) as err:  # truncated, a folder, unreadable, ...
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise BadValue(arg, f"{path} is unreadable or truncated ({reason}): copy it again, or "
                            "delete it (a checkpoint.pt: the run then starts over)") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("config"), dict) \
            or not isinstance(payload.get("state_dict"), dict):
        raise BadValue(arg, f"{path} is unreadable (not a ttsbook checkpoint)")
    return payload


def load_checkpoint(path: str | Path, model: torch.nn.Module, map_location="cpu",
                    arg: str = "checkpoint") -> dict:
    """Load weights into ``model`` after checking the saved config equals ``model.config``.

    Returns the whole payload (for optimiser state, step, RNG, …), read by
    :func:`load_payload` (``weights_only=True``: nothing read from disk runs code). A missing,
    unreadable or refused file, or one saved with a different config (the fields that differ
    are listed), raises a one-line ``BadValue`` naming ``arg``.
    """
    payload = load_payload(path, map_location, arg)
    load_weights(model, payload, path, arg)
    return payload


def load_weights(model: torch.nn.Module, payload: dict, path: str | Path,
                 arg: str = "checkpoint") -> None:
    """Load ``payload``'s weights (read from ``path``) into ``model`` once its saved config is
    ``model.config``; else a one-line ``BadValue`` naming ``arg`` and the fields that differ."""
    path = Path(path)
    saved, mine = payload["config"], config_dict(model.config)
    diff = {k: (saved.get(k), v) for k, v in mine.items() if saved.get(k) != v}
    if diff or set(saved) != set(mine):
        fields = ", ".join(f"{k}: saved {a!r} vs model {b!r}" for k, (a, b) in diff.items())
        raise BadValue(arg, f"checkpoint {path.name} was saved with a different config ({fields})")
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        raise BadValue(arg, f"{path} does not hold this model's weights "
                            f"({str(err).splitlines()[0]})") from None


SCALES = ("cpu", "gpu", "paper")


def book_scale() -> str:
    """Which sizes a chapter uses: ``TTSBOOK_SCALE`` if set, else ``"gpu"`` on a CUDA device.

    ``"cpu"`` (the default without a GPU) runs each chapter in about a minute on 2 cores;
    ``"gpu"`` (picked on a CUDA device) uses the paper's sizes where they fit in minutes on a
    Colab T4; ``"paper"`` (only when asked for, ``TTSBOOK_SCALE=paper``) is the full size.
    """
    scale = os.environ.get("TTSBOOK_SCALE", "").strip().lower()
    if scale and scale not in SCALES:
        raise ValueError(f"TTSBOOK_SCALE must be one of {SCALES}, got {scale!r}")
    return scale or ("gpu" if torch.cuda.is_available() else "cpu")


def announce(scale: str, **estimates: str) -> None:
    """Print the chosen scale and its estimated run time, e.g. ``gpu="2 min on a T4"``.

    Every chapter calls this at the end of its parameter cell, so a reader knows what a
    run will cost before it starts.
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    missing = [s for s in SCALES if s not in estimates]
    if missing:
        raise ValueError(f"give an estimate for every scale; missing {missing}")
    print(f"scale {scale!r}: estimated {estimates[scale]}")


def amp_dtype(device: str | torch.device) -> torch.dtype | None:
    """The autocast dtype for training on ``device``: None means plain float32.

    bf16 only where the GPU computes it natively (compute capability >= 8.0: A100, H100,
    L4, ...). ``torch.cuda.is_bf16_supported()`` alone also says yes when bf16 is merely
    emulated (a T4, Colab's free GPU), so ask without emulation. Other GPUs get fp16, which
    needs a gradient scaler (see :class:`ttsbook.train.Trainer`); the CPU stays in float32.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return None
    if torch.cuda.is_bf16_supported(including_emulation=False):
        return torch.bfloat16
    return torch.float16
