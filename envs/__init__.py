"""Chronotope environments. Importing this module registers every id with gymnasium and imports no backend.

Entry points are strings, so ``import chronotope.envs`` loads neither Open3D nor MuJoCo; registration kwargs are
JSON-serialisable.
"""

from __future__ import annotations

import gymnasium as gym

NAV_ENTRY = "chronotope.envs.nav.env:NavEnv"
NAV_VECTOR_ENTRY = "chronotope.envs.nav.vector_env:NavVectorEnv"

# id -> (task kwargs, max_episode_steps, one-line description)
NAV_ENVS: dict[str, tuple[dict, int, str]] = {
    "chronotope/PointNav-v0": (
        {"task": "pointnav"},
        500,
        "reach a goal point given relative to the start; GPS+compass; success 0.2 m",
    ),
    "chronotope/ObjectNav-v0": (
        {"task": "objectnav"},
        500,
        "reach any instance of a named object category; success within 1.0 m",
    ),
    "chronotope/ObjectRecall-v0": (
        {"task": "object_recall"},
        3000,
        "memory: a cued object is seen, a distractor delay (kwarg delay) follows, then STOP within 1 m of it",
    ),
    "chronotope/TargetSequence-v0": (
        {"task": "target_sequence"},
        128,
        "memory: K coloured objects, one named at a time, +1 per target reached; fixed 128-step episodes",
    ),
    "chronotope/Ballet-v0": (
        {"task": "ballet"},
        300,
        "memory: 2/4/8 dancers perform patterns in turn; after a delay, reach the one that did the named pattern",
    ),
    "chronotope/VLN-v0": (
        {"task": "vln"},
        500,
        "follow a generated English route instruction (VLN-CE measures: nDTW, SPL, success within 3.0 m)",
    ),
}

DESCRIPTIONS: dict[str, str] = {}


def _register_all() -> None:
    for env_id, (kwargs, steps, desc) in NAV_ENVS.items():
        if env_id not in gym.registry:
            gym.register(
                id=env_id,
                entry_point=NAV_ENTRY,
                vector_entry_point=NAV_VECTOR_ENTRY,
                max_episode_steps=steps,
                kwargs=kwargs,
            )
        DESCRIPTIONS[env_id] = desc
    if "chronotope/MemoryLength-v0" not in gym.registry:  # no scene: a diagnostic of memory learning alone
        gym.register(id="chronotope/MemoryLength-v0", entry_point="chronotope.envs.diagnostic:MemoryLengthEnv")
    DESCRIPTIONS["chronotope/MemoryLength-v0"] = (
        "diagnostic: a cue at step 0, `delay` blank steps, then name the cue (bsuite memory_len); no scene"
    )
    try:
        from chronotope.envs.robot.registration import register_robot_envs
    except ModuleNotFoundError as e:  # the robot package is optional in a partial checkout
        if not (e.name or "").startswith("chronotope.envs.robot"):
            raise
    else:
        registered = register_robot_envs() or {}
        if isinstance(registered, dict):
            DESCRIPTIONS.update(registered)
        else:
            DESCRIPTIONS.update({env_id: "MuJoCo arm task" for env_id in registered})


_register_all()
