"""The few things every module shares: where to run, progress bars, atomic checkpoints."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch
from tqdm.auto import tqdm


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when present, else the CPU; anything else is passed to torch."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def progress_disabled() -> bool:
    """Progress bars are off under CI, nbval and whenever ``TQDM_DISABLE`` is set."""
    return any(os.environ.get(k, "") not in ("", "0") for k in ("CI", "TQDM_DISABLE"))


def progress(iterable=None, **kwargs):
    """``tqdm.auto`` that stays silent under CI (see ``progress_disabled``)."""
    return tqdm(iterable, disable=progress_disabled(), **kwargs)


def config_dict(config) -> dict:
    """A dataclass config as a plain dict (what checkpoints store and compare)."""
    return dataclasses.asdict(config)


def atomic_save(payload: dict, path: str | Path) -> Path:
    """``torch.save`` to a temp file, then rename: a crash never leaves half a file at ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def save_checkpoint(path: str | Path, model: torch.nn.Module, **extra) -> Path:
    """Write ``{config, state_dict, **extra}`` atomically (temp file, then rename).

    The model must carry a dataclass ``config``; an interrupted write never leaves a
    half-written checkpoint behind.
    """
    model = getattr(model, "_orig_mod", model)  # save the uncompiled module's weights
    payload = {"config": config_dict(model.config), "state_dict": model.state_dict(), **extra}
    return atomic_save(payload, path)


def load_checkpoint(path: str | Path, model: torch.nn.Module, map_location="cpu") -> dict:
    """Load weights into ``model`` after checking the saved config equals ``model.config``.

    Returns the whole payload (for optimiser state, step, RNG, …). Raises ``ValueError``
    listing the fields that differ.
    """
    payload = torch.load(Path(path), map_location=map_location, weights_only=False)
    mine = config_dict(model.config)
    diff = {k: (payload["config"].get(k), v) for k, v in mine.items() if payload["config"].get(k) != v}
    if diff or set(payload["config"]) != set(mine):
        fields = ", ".join(f"{k}: saved {a!r} vs model {b!r}" for k, (a, b) in diff.items())
        raise ValueError(f"checkpoint {Path(path).name} was saved with a different config ({fields})")
    model.load_state_dict(payload["state_dict"])
    return payload


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
    needs a gradient scaler (see ``ttsbook.runs``); the CPU stays in float32.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return None
    if torch.cuda.is_bf16_supported(including_emulation=False):
        return torch.bfloat16
    return torch.float16
