"""Atomic checkpoints: written to a temporary file and renamed, so a crash never leaves a torn file.

Loading is safe by default: the checkpoint itself is read with ``torch.load(weights_only=True)`` (tensors,
numbers, strings, containers and numpy arrays only; no code runs), and a pickled environment stored in it as
bytes (``env_pickle``, for an exact resume) is read by :func:`loads_env`, an unpickler that builds only classes
of chronotope, gymnasium, numpy and MuJoCo's model / data structs (the arm envs' worlds), and numpy's array /
random-generator rebuild functions, and refuses any other callable. That narrows, but cannot remove, what a
hostile file could do through those classes' constructors: resume only runs you trust.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT = "chronotope-checkpoint-v1"


def _numpy_safe_globals() -> list[Any]:
    """What ``weights_only`` needs for numpy arrays, dtypes and scalars (numpy 1 and 2 module names)."""
    core = getattr(np, "_core", None) or np.core
    out: list[Any] = [np.ndarray, np.dtype, core.multiarray._reconstruct, core.multiarray.scalar]
    for t in (bool, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64):
        out.append(type(np.dtype(t)))
    for t in (np.float16, np.float32, np.float64, np.complex64, np.complex128, np.object_, np.str_, np.bytes_):
        out.append(type(np.dtype(t)))
    return out


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Writes ``payload`` (tensors, numbers, strings, containers, numpy arrays, bytes) atomically to ``path``.

    Stale temporary files of an earlier writer killed mid-write are removed first (the run folder's lock makes
    this process the only writer).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.tmp*"):
        with contextlib.suppress(OSError):
            stale.unlink()
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        torch.save({"format": FORMAT, **payload}, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _fsync_dir(folder: Path) -> None:
    """Makes a rename durable (a power cut after os.replace may otherwise lose it); a no-op where unsupported."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: str | Path, expect: dict[str, Any] | None = None) -> dict[str, Any]:
    """Reads a checkpoint safely (``weights_only=True``); raises ValueError for a missing, corrupt, unsafe or
    mismatched file (naming the field).

    Args:
        expect: fields that must match (e.g. ``{"agent": "hcam", "env": "chronotope/PointNav-v0"}``).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no checkpoint at {str(path)!r}")
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        globals_ = [ln.strip() for ln in str(e).splitlines() if "GLOBAL" in ln or "Unsupported global" in ln]
        if globals_:  # a well-formed pickle that would build something other than plain data
            raise ValueError(
                f"checkpoint {str(path)!r} was not loaded: it holds objects that are not plain data, and unpickling "
                f"them could run code ({globals_[0]})"
            ) from e
        detail = next((ln.strip() for ln in reversed(str(e).splitlines()) if ln.strip() and "torch.load" not in ln), "")
        raise ValueError(f"corrupt checkpoint {str(path)!r}: {type(e).__name__}: {detail}") from e
    except (RuntimeError, EOFError, OSError, ValueError, AttributeError) as e:
        raise ValueError(f"corrupt checkpoint {str(path)!r}: {type(e).__name__}: {e}") from e
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{str(path)!r} is not a Chronotope checkpoint (format {FORMAT!r} expected)")
    for k, v in (expect or {}).items():
        if data.get(k) != v:
            raise ValueError(f"checkpoint {str(path)!r} has {k}={data.get(k)!r}, but this run has {k}={v!r}")
    return data


# Module prefixes whose *classes* an env pickle may build, and the only functions it may call.
_ENV_CLASS_MODULES = ("chronotope.", "gymnasium.", "numpy", "collections", "mujoco._structs")
_ENV_FUNCTIONS = {
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy.random._pickle", "__bit_generator_ctor"),
    ("numpy.random._pickle", "__generator_ctor"),
    ("numpy.random._pickle", "__randomstate_ctor"),
    ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
    ("copyreg", "_reconstructor"),
}
_ENV_BUILTINS = {"set", "frozenset", "slice", "range", "complex", "bytearray", "object", "tuple", "list", "dict"}


class _EnvUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ENV_FUNCTIONS or (module == "builtins" and name in _ENV_BUILTINS):
            return super().find_class(module, name)
        if module.startswith(_ENV_CLASS_MODULES):
            obj = super().find_class(module, name)
            if isinstance(obj, type):
                return obj
        raise pickle.UnpicklingError(f"the stored environment refers to {module}.{name}, which is not allowed")


def loads_env(blob: bytes) -> Any:
    """Unpickles an environment stored in a checkpoint, building only allowed classes (see the module docstring)."""
    try:
        return _EnvUnpickler(io.BytesIO(blob)).load()
    except pickle.UnpicklingError as e:
        raise ValueError(f"cannot restore the stored environment: {e}") from e
