import numpy as np
import pytest
from PIL import Image

from chronotope.scripts.viz.robot_strip import (
    ARM_MEMORY_TASKS,
    GAP,
    RobotStripConfig,
    episode_strip,
    key_frames,
    main,
    stack_strips,
)

SIZE = 64


@pytest.fixture(scope="module")
def shell_game():
    return episode_strip("chronotope/ShellGame-v0", frames=6, size=SIZE, seed=0)


def _first_response_step(task: str, seed: int) -> int:
    """The go lamp's first step, found by running the episode independently of the strip code."""
    import gymnasium as gym

    from chronotope.envs.robot.oracles import make_policy, policy_seed
    from chronotope.envs.robot.registration import register_robot_envs

    register_robot_envs()
    env = gym.make(task)
    oracle = make_policy(env, "perfect", seed=seed)
    obs, info = env.reset(seed=seed)
    oracle.reset(obs, seed=policy_seed(seed))
    t = 0
    while info["phase"] != "response":
        obs, _, term, trunc, info = env.step(oracle.act(obs))
        t += 1
        assert not (term or trunc), "the episode ended before the go lamp"
    env.close()
    return t


def test_every_memory_task_and_no_sanity_task_is_a_default_row():
    assert len(ARM_MEMORY_TASKS) == 9
    assert "chronotope/ShellGame-v0" in ARM_MEMORY_TASKS
    assert "chronotope/Reach-v0" not in ARM_MEMORY_TASKS
    assert "chronotope/PickPlace-v0" not in ARM_MEMORY_TASKS


def test_strip_has_one_frame_per_step_chosen(shell_game):
    s = shell_game
    assert len(s.steps) == 6
    assert s.image.dtype == np.uint8 and s.image.ndim == 3 and s.image.shape[2] == 3
    assert s.image.shape[1] == s.label_width + 6 * SIZE + 5 * GAP
    assert SIZE < s.image.shape[0] < 2 * SIZE  # frame plus caption band
    assert len(s.phases) == s.length + 1
    assert s.success  # the perfect oracle solves it


def test_frames_follow_the_episode_and_include_the_go_lamp(shell_game):
    s = shell_game
    assert list(s.steps) == sorted(set(s.steps))
    assert s.steps[0] == 0 and s.steps[-1] == s.length
    go = _first_response_step("chronotope/ShellGame-v0", 0)
    assert s.go_step == go
    assert go in s.steps
    assert s.phases[go] == "response" and s.phases[go - 1] != "response"
    # One frame from each of the cue, the shuffle and the response.
    assert {s.phases[t] for t in s.steps} == {"cue", "shuffle", "response"}


def test_same_seed_same_pixels(shell_game):
    again = episode_strip("chronotope/ShellGame-v0", frames=6, size=SIZE, seed=0)
    assert again.steps == shell_game.steps
    np.testing.assert_array_equal(again.image, shell_game.image)


def test_task_without_a_delay_phase_still_gets_the_go_lamp():
    s = episode_strip("chronotope/ColourSequence-v0", frames=4, size=SIZE, seed=1)
    assert len(s.steps) == 4 and s.go_step in s.steps
    assert s.image.shape[1] == s.label_width + 4 * SIZE + 3 * GAP


def test_stacked_rows_line_up(shell_game):
    other = episode_strip("chronotope/PairRecall-v0", frames=6, size=SIZE, seed=0)
    img = stack_strips([shell_game, other])
    assert img.shape[0] == shell_game.image.shape[0] + other.image.shape[0] + GAP
    label_w = max(shell_game.label_width, other.label_width)
    assert img.shape[1] == label_w + 6 * SIZE + 5 * GAP
    # The first frame of each row starts at the same x: the top-left frame pixels are the strips' own.
    h = shell_game.image.shape[0]
    for y, s in ((0, shell_game), (h + GAP, other)):
        first_frame = s.image[:SIZE, s.label_width : s.label_width + SIZE]
        np.testing.assert_array_equal(img[y : y + SIZE, label_w : label_w + SIZE], first_frame)


def test_cli_writes_the_png(tmp_path):
    out = tmp_path / "sub" / "strips.png"
    main(RobotStripConfig(out=out, tasks=("chronotope/WhereHidden-v0",), frames=3, size=SIZE, seed=0))
    img = np.asarray(Image.open(out))
    assert img.shape[0] > SIZE and img.shape[2] == 3
    assert [p.name for p in out.parent.iterdir()] == ["strips.png"]  # no temporary file left behind


@pytest.mark.parametrize("task", ["chronotope/NoSuchTask-v0", "chronotope/Reach-v0"])
def test_bad_task_id_is_named(task, tmp_path):
    with pytest.raises(ValueError, match=task):
        episode_strip(task, size=SIZE)
    with pytest.raises(ValueError, match=task):  # every id is checked before any episode runs
        main(RobotStripConfig(out=tmp_path / "x.png", tasks=("chronotope/ShellGame-v0", task), size=SIZE))
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("frames", [0, -2, 10_000])
def test_bad_frame_count_is_named(frames):
    with pytest.raises(ValueError, match=f"frames={frames}"):
        episode_strip("chronotope/ShellGame-v0", frames=frames, size=SIZE)


def test_key_frames_order_of_choice():
    phases = ["cue"] * 5 + ["delay"] * 20 + ["response"] * 12  # go lamp at 25, last step 36
    assert key_frames(phases, 1) == [25]
    assert key_frames(phases, 3) == [0, 25, 36]
    assert key_frames(phases, 6) == [0, 4, 15, 25, 30, 36]
    more = key_frames(phases, 10)
    assert len(more) == 10 and more == sorted(set(more)) and set(key_frames(phases, 6)) <= set(more)
    assert key_frames(phases, len(phases)) == list(range(len(phases)))
