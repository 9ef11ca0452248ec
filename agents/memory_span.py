"""What memory tasks declare to trainers: the cue-to-query span and the controllable steps.

A memory task declares the most steps between the last informative observation and the decision that needs it
(``Task.cue_to_query_span``). A recurrent core only learns to keep what its gradient reaches, so the trainers
compare that span with their truncation window and warn, once, with the numbers when it is shorter. Tasks with
scripted phases declare which steps' actions are the agent's own (``Task.controllable``); losses on the other
steps would only teach noise.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

from chronotope.agents.envs import nav_cores


def declared_span(venv) -> int | None:
    """The cue-to-query span (steps) the env's task declares; None when the env declares none."""
    spans = []
    cores = nav_cores(venv)
    for core in cores:
        try:
            spans.append(int(core.task.cue_to_query_span()))
        except (AttributeError, NotImplementedError):  # a task that declares no span
            pass
    if not cores:  # other envs may declare it themselves (e.g. chronotope/MemoryLength-v0)
        try:
            spans += [int(f() if callable(f) else f) for f in venv.get_attr("cue_to_query_span")]
        except (AttributeError, NotImplementedError):  # declared by none of them
            pass
    return max(spans, default=None)


def resolve_overlap(overlap: int | None, span: int | None, rollout_len: int, stateless: bool) -> int:
    """The number of replayed steps before each training sequence (see ``TrainConfig.bptt_overlap``)."""
    if overlap is not None:
        return int(overlap)
    if stateless or span is None:
        return 0
    return min(max(span - 1, 0), rollout_len)


def warn_if_truncated(env_id: str, span: int | None, bptt_len: int, overlap: int = 0) -> bool:
    """Warns (once per call site and numbers) when ``bptt_len + overlap`` is shorter than the declared span."""
    if span is None or bptt_len + overlap >= span:
        return False
    warnings.warn(
        f"{env_id} declares a cue-to-query span of {span} steps, but training sequences reach back only "
        f"bptt_len {bptt_len} + bptt_overlap {overlap} = {bptt_len + overlap} steps: memory gradients will not "
        f"reach every cue (make bptt_len + bptt_overlap >= {span})",
        stacklevel=2,
    )
    return True


def controllable_for(venv) -> Callable[[], np.ndarray] | None:
    """bool [N] per step: whether the agent's action is used (tasks with scripted phases say when it is not;
    labels of scripted steps would only teach noise). None for envs without a Chronotope navigation core."""
    cores = nav_cores(venv)
    if not cores:
        return None
    return lambda: np.concatenate([np.asarray(core.task.controllable(core), bool) for core in cores])
