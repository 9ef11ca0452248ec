"""Atomic checkpoints: written to a temporary file and renamed, so a crash never leaves a torn file."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

FORMAT = "chronotope-checkpoint-v1"


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Writes ``payload`` (tensors, numbers, picklable objects) atomically to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        torch.save({"format": FORMAT, **payload}, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_checkpoint(path: str | Path, expect: dict[str, Any] | None = None) -> dict[str, Any]:
    """Reads a checkpoint; raises ValueError for a missing, corrupt or mismatched file (naming the field).

    Args:
        expect: fields that must match (e.g. ``{"agent": "hcam", "env": "chronotope/PointNav-v0"}``).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no checkpoint at {str(path)!r}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError, OSError, ValueError, AttributeError) as e:
        raise ValueError(f"corrupt checkpoint {str(path)!r}: {type(e).__name__}: {e}") from e
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{str(path)!r} is not a Chronotope checkpoint (format {FORMAT!r} expected)")
    for k, v in (expect or {}).items():
        if data.get(k) != v:
            raise ValueError(f"checkpoint {str(path)!r} has {k}={data.get(k)!r}, but this run has {k}={v!r}")
    return data
