"""Run folders: one run per folder, refused reruns, resumes that stay where they are, logs that never double back.

A run folder ``out_dir/name`` belongs to one training process at a time: :class:`RunFolder` holds an exclusive
``flock`` on ``<run>/.lock`` for the whole run (the kernel releases it when the process dies, even by
``kill -9``, so a crashed run never leaves a stale lock; a finished one removes the file). A second
``chronotope train`` on the same folder is refused; a new run on an existing folder is refused unless
``--overwrite`` (which empties it first), and ``--resume DIR`` continues in ``DIR`` itself (not in the
``out_dir/name`` recorded in its config, so a copied run resumes in the copy). A resume keeps the run's settings;
it may raise ``--steps`` (the run is extended) and change only what does not alter the training
(:data:`RESUME_OVERRIDES`); anything else is refused with the reason. Algorithms without an exact resume
(:data:`RESUMABLE` lists those with one) refuse ``--resume`` instead of silently restarting.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
from pathlib import Path

from chronotope.agents.config import TrainConfig

RESUMABLE = ("ppo",)
"""Algorithms whose checkpoints hold everything an exact resume needs (model, optimiser, RNGs, envs, counters)."""

RESUME_OVERRIDES = ("steps", "progress", "device", "torch_threads", "checkpoint_every", "checkpoint_minutes")
"""Settings a resume may change: the budget and how the run is executed, never what it computes."""

LOCK_NAME = ".lock"


class RunError(ValueError):
    """A run folder cannot be used as asked; the message says why and what to do instead."""


def truncate_progress(path: str | Path, key: str, upto: int) -> None:
    """Keeps the records of ``path`` (JSON lines) with ``rec[key] <= upto`` and drops the rest, including a torn
    last line of a killed writer; rewritten atomically. A missing file is left missing."""
    path = Path(path)
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get(key), int | float) and rec[key] <= upto:
            kept.append(line + "\n")
    atomic_write_text(path, "".join(kept))


def atomic_write_text(path: str | Path, text: str) -> None:
    """Writes ``text`` to ``path`` through a temporary file in the same folder and a rename, so a reader sees the old
    file or the new one, never a torn one (the folder must exist)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _is_main_rank() -> bool:
    return os.environ.get("RANK", "0") in ("", "0")


def resolve_resume(cfg: TrainConfig) -> TrainConfig:
    """The config a ``--resume DIR`` run continues with: the saved one, placed in ``DIR``, with the allowed
    overrides of ``cfg`` (settings the command line left at their defaults keep the run's values).

    Raises:
        RunError: no config or checkpoint in ``DIR``, an algorithm without resume, a setting that a resume cannot
            change, or a step budget that the run has already reached.
    """
    run = Path(cfg.resume)
    if not (run / "config.json").is_file():
        raise RunError(f"cannot resume {str(run)!r}: it has no config.json (not a run folder)")
    saved = TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
    if saved.algo not in RESUMABLE:
        raise RunError(
            f"cannot resume {str(run)!r}: --algo {saved.algo} runs cannot be resumed (only {', '.join(RESUMABLE)}); "
            "start a new run with another --name, or rerun this one with --overwrite"
        )
    run_steps = saved.steps
    default = TrainConfig()
    changed = []
    for f in dataclasses.fields(TrainConfig):
        k = f.name
        if k in ("resume", "overwrite"):
            continue
        given, ours = getattr(cfg, k), getattr(saved, k)
        if given == getattr(default, k) or given == ours:
            continue
        if k in RESUME_OVERRIDES:
            setattr(saved, k, given)
        elif k in ("name", "out_dir"):
            changed.append(f"--{k.replace('_', '-')} (a resumed run stays in {str(run)!r})")
        else:
            changed.append(f"--{k.replace('_', '-')} {given!r} (the run has {ours!r})")
    if changed:
        raise RunError(
            f"cannot resume {str(run)!r} with different settings: {'; '.join(changed)}; a resume may change only "
            f"{', '.join('--' + k.replace('_', '-') for k in RESUME_OVERRIDES)}"
        )
    saved.out_dir, saved.name, saved.resume, saved.overwrite = run.parent, run.name, run, False
    saved.validate()
    ckpt = run / "checkpoint.pt"
    if not ckpt.is_file():
        raise RunError(
            f"cannot resume {str(run)!r}: it has no checkpoint.pt (it stopped before its first checkpoint); "
            "start it again with --overwrite"
        )
    from chronotope.agents.checkpoint import load_checkpoint

    data = load_checkpoint(ckpt, expect={"agent": saved.agent, "env": saved.env})
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    per_update = saved.num_envs * saved.rollout_len * world
    done_updates, done_steps = int(data["update"]), int(data["global_step"])
    if done_updates >= max(1, math.ceil(saved.steps / per_update)):
        if saved.steps != run_steps:
            raise RunError(
                f"--steps {saved.steps} does not extend {str(run)!r}: it has already trained {done_steps} steps; "
                f"ask for more than {done_steps}"
            )
        raise RunError(
            f"{str(run)!r} is already finished ({done_steps} of {saved.steps} steps); pass --steps N with "
            f"N > {done_steps} to train it further"
        )
    return saved


class RunFolder:
    """Context manager owning ``cfg.run_dir()`` for one run: lock, refusal or emptying of an existing run, and
    removal of a folder this run created when it fails before writing anything worth keeping.

    Only the main process of a multi-process run (``RANK`` 0 or unset) locks and checks the folder.
    """

    KEEP_IF_PRESENT = ("checkpoint.pt", "sb3_model.zip")

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.path = cfg.run_dir()
        self._fd: int | None = None
        self._created = False

    def __enter__(self) -> RunFolder:
        if not _is_main_rank():
            return self
        self._created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            if self.cfg.resume is None:
                self._claim()
        except BaseException:
            self._unlock()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._fd is None:
            return
        failed = exc_type is not None and not issubclass(exc_type, KeyboardInterrupt | SystemExit)
        if failed and self._created and not any((self.path / k).exists() for k in self.KEEP_IF_PRESENT):
            shutil.rmtree(self.path, ignore_errors=True)  # a failed start leaves no empty run behind
        self._unlock()

    def _lock(self) -> None:
        import fcntl

        lock = self.path / LOCK_NAME
        while True:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise RunError(
                    f"run folder {str(self.path)!r} is in use by another training (pid {holder}); wait for it to end "
                    "or choose another --name"
                ) from None
            # The holder unlinks the file before it unlocks: a lock taken on an unlinked file is no lock.
            try:
                same = os.stat(lock).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def _unlock(self) -> None:
        if self._fd is None:
            return
        import fcntl

        with contextlib.suppress(OSError):
            (self.path / LOCK_NAME).unlink()  # while still locked (see _lock); a killed run leaves it, unlocked
        with contextlib.suppress(OSError):
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def _claim(self) -> None:
        """A new run: the folder must hold no earlier run, unless ``overwrite`` (then it is emptied)."""
        others = [p for p in self.path.iterdir() if p.name != LOCK_NAME]
        if not others:
            return
        if not self.cfg.overwrite:
            raise RunError(
                f"run folder {str(self.path)!r} already holds a run; pass --overwrite to replace it, "
                f"--resume {self.path} to continue it, or choose another --name"
            )
        for p in others:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
