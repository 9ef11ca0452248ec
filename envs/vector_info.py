"""Reading a vector env's batched info, in Gymnasium's own layout.

Every vector env here follows Gymnasium 1.x (``SyncVectorEnv`` with ``AutoresetMode.SAME_STEP``; the native
``NavVectorEnv`` gives the same layout): an info entry ``info[key]`` is an array with a leading dim N and a bool
mask ``info["_" + key]`` [N] saying which sub-environments have it. When sub-environment i's episode ends in a step:

* ``info["final_obs"]`` is an object array [N] whose entry i is that episode's last observation (a dict of arrays
  for a ``Dict`` space), ``info["_final_obs"]`` its mask;
* ``info["final_info"]`` is itself a batched info dict (arrays [N, ...] with their own ``_key`` masks: the keys
  of the finished episodes' last step info), ``info["_final_info"]`` the mask of the finished rows;
* the returned observation and the top-level info row i already belong to the next episode.

A reader that wants one episode's last info as a plain dict uses :func:`final_info_row` (or :func:`info_row`
for any batched dict); :func:`finished_rows` lists the rows that have one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_FINAL_KEYS = frozenset({"final_obs", "final_info"})


def info_row(batched: dict[str, Any], i: int) -> dict[str, Any]:
    """Sub-environment ``i``'s entries of a Gymnasium batched info dict: masks ``_key`` dropped, keys whose mask
    is off in row ``i`` left out, nested dicts recursed into. ``final_obs`` / ``final_info`` (the previous episode's,
    in a row that just ended) are left out: read them with :func:`final_info_row`."""
    out: dict[str, Any] = {}
    for k, v in batched.items():
        if k.startswith("_") or k in _FINAL_KEYS:
            continue
        mask = batched.get(f"_{k}")
        if mask is not None and not mask[i]:
            continue
        out[k] = info_row(v, i) if isinstance(v, dict) else v[i]
    return out


def finished_rows(info: dict[str, Any]) -> np.ndarray:
    """Indices (int [M]) of the sub-environments whose episode ended in the step that returned ``info``."""
    mask = info.get("_final_info")
    return np.zeros(0, np.int64) if mask is None else np.flatnonzero(mask)


def final_info_row(info: dict[str, Any], i: int) -> dict[str, Any]:
    """The last step info of sub-environment ``i``'s finished episode, as one dict (empty when row ``i`` did not
    finish in this step)."""
    fi = info.get("final_info")
    mask = info.get("_final_info")
    if fi is None or (mask is not None and not mask[i]):
        return {}
    return info_row(fi, i)
