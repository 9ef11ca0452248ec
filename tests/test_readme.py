"""The README is true: its Python snippet runs, every dotted ``chronotope.*`` API path it names imports, every
command-line flag it shows exists, the agents and wrappers it lists are accepted, and its example run
(ObjectRecall: no ``soft_spl``, no ``collisions``) goes through ``viz --what metrics``."""

from __future__ import annotations

import importlib
import json
import re
import shlex
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
TEXT = README.read_text()


def _blocks(lang: str) -> list[str]:
    """Fenced code blocks whose info string is ``lang`` ("" for bare fences)."""
    blocks, cur, info = [], None, ""
    for line in TEXT.splitlines(keepends=True):
        if line.startswith("```"):
            if cur is None:
                cur, info = [], line[3:].strip()
            else:
                if info == lang:
                    blocks.append("".join(cur))
                cur = None
        elif cur is not None:
            cur.append(line)
    return blocks


def _resolve(dotted: str):
    """Imports the longest module prefix of ``dotted`` and walks the rest as attributes."""
    parts = dotted.split(".")
    for k in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:k]))
        except ModuleNotFoundError:
            continue
        for name in parts[k:]:
            obj = getattr(obj, name)
        return obj
    raise ModuleNotFoundError(dotted)


API_PATHS = sorted(set(re.findall(r"\bchronotope(?:\.[A-Za-z_]\w*)+", TEXT)))


def test_readme_names_api_paths():
    assert "chronotope.envs.scene.generate_apartment" in API_PATHS
    assert "chronotope.envs.scene.load_mesh_scene" in API_PATHS


@pytest.mark.parametrize("dotted", API_PATHS)
def test_readme_api_path_imports(dotted):
    _resolve(dotted)


def test_experiment_modules_exist():
    sentence = TEXT[TEXT.index("Experiments: `python -m chronotope.scripts.experiments.<name>`") :]
    sentence = sentence[: sentence.index("their results")]
    names = re.findall(r"`(\w+)`", sentence)
    assert len(names) >= 5
    for name in names:
        importlib.import_module(f"chronotope.scripts.experiments.{name}")


def test_agents_and_wrappers_listed_are_accepted():
    from chronotope.maps.wrappers import parse_wrappers
    from chronotope.memory import available_memories

    agents = TEXT[TEXT.index("Memory cores (`--agent`)") :]
    agents = re.findall(r"`(\w+)`", agents[: agents.index("(see")])
    assert set(agents) == set(available_memories())
    wrappers = re.search(r"--wrappers ([\w,]+)", TEXT).group(1)
    assert parse_wrappers(wrappers) == wrappers.split(",")


def test_python_snippets_run(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    _record_readme_datasets()  # the dataset snippet loads what the README's `chronotope dataset` line records
    blocks = _blocks("python")
    assert len(blocks) >= 2
    for code in blocks:
        code = code.replace("num_envs=64", "num_envs=2")  # the same call, fewer envs
        namespace: dict = {}
        exec(compile(code, str(README), "exec"), namespace)
        for name in ("env", "venv"):
            if name in namespace:
                namespace[name].close()
        if "same" in namespace:
            assert namespace["same"].to_json() == namespace["scene"].to_json()


def _commands() -> list[list[str]]:
    """``chronotope ...`` lines of the command-line block (continuations joined, comments dropped)."""
    (block,) = [b for b in _blocks("") if "chronotope train" in b]
    lines, cur = [], ""
    for raw in block.splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        cur = f"{cur} {line.rstrip(chr(92)).strip()}" if cur else line.rstrip(chr(92)).strip()
        if not line.endswith("\\"):
            lines.append(shlex.split(cur))
            cur = ""
    return [c for c in lines if c and c[0] == "chronotope"]


def _record_readme_datasets() -> None:
    """Runs the README's ``chronotope dataset`` commands at 2 episodes (no memory-demand measurement)."""
    from chronotope.scripts.cli import main

    for cmd in (c for c in _commands() if c[1] == "dataset"):
        args = cmd[2:]
        args[args.index("--episodes") + 1] = "2"
        main(["dataset", *args, "--demand-episodes", "0", "--no-progress"])


def test_command_line_flags_exist(capsys):
    from chronotope.scripts.cli import main

    commands = _commands()
    assert {c[1] for c in commands} >= {"envs", "train", "eval", "viz", "bench"}
    for cmd in commands:
        with pytest.raises(SystemExit) as e:
            main([cmd[1], "--help"])
        assert e.value.code == 0
        helptext = capsys.readouterr().out
        for flag in (a for a in cmd[2:] if a.startswith("--")):
            assert re.search(rf"{re.escape(flag)}\b", helptext), f"`{' '.join(cmd)}`: no {flag} in --help"


def test_info_measures_promised_per_env():
    """The README's table of measures is what each env reports."""
    import gymnasium as gym

    import chronotope.envs  # noqa: F401

    rows = dict(re.findall(r"^\| (\w+(?:, \w+)*) \| ((?:`\w+`(?:, )?)+) \|$", TEXT, flags=re.M))
    assert len(rows) == 5
    for names, keys in rows.items():
        for name in names.split(", "):
            env = gym.make(f"chronotope/{name}-v0", obs_mode="state", num_scenes=1)
            env.reset(seed=0)
            info = env.step(1)[-1]
            env.close()
            want = {"distance_to_goal", "success", "path_length", "steps", *re.findall(r"`(\w+)`", keys)}
            assert want <= set(info), f"{name} lacks {sorted(want - set(info))}"


def test_viz_metrics_on_an_object_recall_run(tmp_path, capsys):
    """The README's example task through train -> eval -> viz --what metrics (no soft_spl, no collisions)."""
    from chronotope.scripts.cli import main

    kw = json.dumps({"obs_mode": "state", "num_scenes": 1, "delay": 2, "max_episode_steps": 30})
    main(
        ["train", "--env", "chronotope/ObjectRecall-v0", "--agent", "none", "--steps", "64", "--num-envs", "2"]
        + ["--rollout-len", "16", "--bptt-len", "8", "--epochs", "1", "--minibatches", "1", "--env-kwargs", kw]
        + ["--name", "recall", "--out-dir", str(tmp_path), "--no-progress", "--device", "cpu"]
    )
    run = tmp_path / "recall"
    main(["eval", "--run", str(run), "--episodes", "2", "--num-envs", "2", "--progress", "False"])
    summary = json.loads((run / "eval" / "summary.json").read_text())
    assert "success" in summary and "soft_spl" not in summary
    capsys.readouterr()
    out = tmp_path / "metrics.png"
    main(["viz", str(run), "--what", "metrics", "--save", str(out)])
    assert out.is_file() and out.stat().st_size > 0
    assert f"wrote {out.resolve()}" in capsys.readouterr().out

    from chronotope.scripts.viz.plots import metrics_bar

    fig = metrics_bar({"recall": run})
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["success", "spl"]
    with pytest.raises(ValueError, match="lacks metric"):
        metrics_bar({"recall": run}, metrics=("soft_spl",))
