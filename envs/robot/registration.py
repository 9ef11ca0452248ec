"""Registers the robot task ids with gymnasium; imports neither MuJoCo nor the env modules."""

from __future__ import annotations

_VEC = "chronotope.envs.robot.vector_env:"

ROBOT_ENV_SPECS: dict[str, dict] = {
    "chronotope/Reach-v0": {
        "entry_point": "chronotope.envs.robot.tasks.reach:ReachEnv",
        "vector_entry_point": _VEC + "ReachVectorEnv",
        "max_episode_steps": 50,
    },
    "chronotope/PickPlace-v0": {
        "entry_point": "chronotope.envs.robot.tasks.pick_place:PickPlaceEnv",
        "vector_entry_point": _VEC + "PickPlaceVectorEnv",
        "max_episode_steps": 120,
    },
    "chronotope/CueRecallPick-v0": {
        "entry_point": "chronotope.envs.robot.tasks.cue_recall:CueRecallPickEnv",
        "vector_entry_point": _VEC + "CueRecallPickVectorEnv",
        "max_episode_steps": 120,
    },
    "chronotope/CountPress-v0": {
        "entry_point": "chronotope.envs.robot.tasks.count_press:CountPressEnv",
        "vector_entry_point": _VEC + "CountPressVectorEnv",
        "max_episode_steps": 150,
    },
    "chronotope/ButtonSequence-v0": {
        "entry_point": "chronotope.envs.robot.tasks.button_sequence:ButtonSequenceEnv",
        "vector_entry_point": _VEC + "ButtonSequenceVectorEnv",
        "max_episode_steps": 150,
    },
    "chronotope/ColourSequence-v0": {
        "entry_point": "chronotope.envs.robot.tasks.colour_sequence:ColourSequenceEnv",
        "vector_entry_point": _VEC + "ColourSequenceVectorEnv",
        "max_episode_steps": 150,
    },
    "chronotope/RestorePlace-v0": {
        "entry_point": "chronotope.envs.robot.tasks.restore_place:RestorePlaceEnv",
        "vector_entry_point": _VEC + "RestorePlaceVectorEnv",
        "max_episode_steps": 120,
    },
    "chronotope/WhereHidden-v0": {
        "entry_point": "chronotope.envs.robot.tasks.where_hidden:WhereHiddenEnv",
        "vector_entry_point": _VEC + "WhereHiddenVectorEnv",
        "max_episode_steps": 80,
    },
    "chronotope/MultiCueTouch-v0": {
        "entry_point": "chronotope.envs.robot.tasks.multi_cue_touch:MultiCueTouchEnv",
        "vector_entry_point": _VEC + "MultiCueTouchVectorEnv",
        "max_episode_steps": 150,
    },
    "chronotope/PairRecall-v0": {
        "entry_point": "chronotope.envs.robot.tasks.pair_recall:PairRecallEnv",
        "vector_entry_point": _VEC + "PairRecallVectorEnv",
        "max_episode_steps": 80,
    },
    "chronotope/ShellGame-v0": {
        "entry_point": "chronotope.envs.robot.tasks.shell_game:ShellGameEnv",
        "vector_entry_point": _VEC + "ShellGameVectorEnv",
        "max_episode_steps": 100,
    },
}
"""Task id -> registration arguments (string entry points, so registering imports nothing heavy). The
``vector_entry_point`` is the task's batched env (:mod:`chronotope.envs.robot.vector_env`), built by
``gymnasium.make_vec(id, num_envs=N, vectorization_mode="vector_entry_point")``."""


def register_robot_envs() -> list[str]:
    """Registers every robot id that is not registered yet (idempotent); returns the ids."""
    import gymnasium

    for env_id, spec in ROBOT_ENV_SPECS.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(id=env_id, **spec)
    return list(ROBOT_ENV_SPECS)
