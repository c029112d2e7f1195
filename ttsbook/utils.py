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


SCALES = ("cpu", "paper")


def book_scale() -> str:
    """Which defaults a chapter uses: ``TTSBOOK_SCALE`` if set, else ``"paper"`` on a GPU.

    ``"cpu"`` runs each chapter in about a minute on 2 cores; ``"paper"`` uses the paper's
    sizes (meant for a GPU, e.g. Colab).
    """
    scale = os.environ.get("TTSBOOK_SCALE", "").strip().lower()
    if scale and scale not in SCALES:
        raise ValueError(f"TTSBOOK_SCALE must be one of {SCALES}, got {scale!r}")
    return scale or ("paper" if torch.cuda.is_available() else "cpu")
