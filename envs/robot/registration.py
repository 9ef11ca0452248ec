"""Registers the robot task ids with gymnasium; imports neither MuJoCo nor the env modules."""

from __future__ import annotations

ROBOT_ENV_SPECS: dict[str, dict] = {
    "chronotope/Reach-v0": {
        "entry_point": "chronotope.envs.robot.tasks.reach:ReachEnv",
        "max_episode_steps": 50,
    },
    "chronotope/PickPlace-v0": {
        "entry_point": "chronotope.envs.robot.tasks.pick_place:PickPlaceEnv",
        "max_episode_steps": 120,
    },
    "chronotope/CueRecallPick-v0": {
        "entry_point": "chronotope.envs.robot.tasks.cue_recall:CueRecallPickEnv",
        "max_episode_steps": 120,
    },
    "chronotope/CountPress-v0": {
        "entry_point": "chronotope.envs.robot.tasks.count_press:CountPressEnv",
        "max_episode_steps": 150,
    },
    "chronotope/ButtonSequence-v0": {
        "entry_point": "chronotope.envs.robot.tasks.button_sequence:ButtonSequenceEnv",
        "max_episode_steps": 150,
    },
    "chronotope/ColourSequence-v0": {
        "entry_point": "chronotope.envs.robot.tasks.colour_sequence:ColourSequenceEnv",
        "max_episode_steps": 150,
    },
    "chronotope/RestorePlace-v0": {
        "entry_point": "chronotope.envs.robot.tasks.restore_place:RestorePlaceEnv",
        "max_episode_steps": 120,
    },
    "chronotope/WhereHidden-v0": {
        "entry_point": "chronotope.envs.robot.tasks.where_hidden:WhereHiddenEnv",
        "max_episode_steps": 80,
    },
    "chronotope/MultiCueTouch-v0": {
        "entry_point": "chronotope.envs.robot.tasks.multi_cue_touch:MultiCueTouchEnv",
        "max_episode_steps": 150,
    },
    "chronotope/PairRecall-v0": {
        "entry_point": "chronotope.envs.robot.tasks.pair_recall:PairRecallEnv",
        "max_episode_steps": 80,
    },
    "chronotope/ShellGame-v0": {
        "entry_point": "chronotope.envs.robot.tasks.shell_game:ShellGameEnv",
        "max_episode_steps": 100,
    },
}
"""Task id -> registration arguments (string entry points, so registering imports nothing heavy). Each id also gets
a ``vector_entry_point``, its batched env (:func:`vector_class_name`, made in :mod:`chronotope.envs.robot.vector_env`
from this table), built by ``gymnasium.make_vec(id, num_envs=N, vectorization_mode="vector_entry_point")``: a new
task is one entry here."""


def vector_class_name(entry_point: str) -> str:
    """The batched env class of a task's ``entry_point`` (``...:ReachEnv`` -> ``ReachVectorEnv``)."""
    return entry_point.rsplit(":", 1)[1].removesuffix("Env") + "VectorEnv"


def register_robot_envs() -> list[str]:
    """Registers every robot id that is not registered yet (idempotent); returns the ids."""
    import gymnasium

    for env_id, spec in ROBOT_ENV_SPECS.items():
        if env_id not in gymnasium.registry:
            vector = "chronotope.envs.robot.vector_env:" + vector_class_name(spec["entry_point"])
            gymnasium.register(id=env_id, vector_entry_point=vector, **spec)
    return list(ROBOT_ENV_SPECS)
