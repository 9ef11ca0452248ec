"""RobotEnv: the shared MuJoCo core of the arm tasks (scene build, control, observations, rendering).

A task subclasses :class:`RobotEnv`, declares its config dataclass and fills the hooks:

* ``_build(spec)``: add task bodies to the ``MjSpec`` of the shared scene (once, at construction);
* ``_initialize_episode()``: place objects / sample cues with ``self.np_random`` (every reset);
* ``_update_scene()``: per-step scene changes driven by the step counter (cue lamps, distractors);
* ``_task_obs_spaces(state)`` / ``_task_obs(state)``: extra observation keys;
* ``_evaluate()``: -> (terminated, reward terms, measures) after each step.

Memory tasks also override ``controllable()`` (False while a scripted phase holds the arm; the agent's action is
then ignored), ``cue_to_query_span()`` and ``memoryless_bound()`` (the memory-demand spec's declarations).

The reward is the sum of the named terms; each is reported as ``info["reward_<name>"]``.

Conventions shared with the navigation envs (see :mod:`chronotope.envs.nav.core`): ``obs_mode`` ``state`` /
``rgbd`` mean the same there; unknown kwargs and bad values raise ``ValueError`` naming them (:func:`make_config`,
``__post_init__``); depth is float32 metres ``[H, W, 1]`` clipped at ``max_depth``, and a ray that hits nothing
(or hits beyond ``max_depth``) reads ``max_depth`` with segmentation 0, as the nav renderers do (Habitat's
convention after clipping).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from chronotope.envs.robot import arm_constants as C
from chronotope.envs.robot.controllers import DLSIKController, JointPositionController
from chronotope.envs.robot.raycast import RaycastCamera

CONTROL_MODES = ("ee_delta", "joint")
OBS_MODES = ("state", "rgbd")
IMAGE_SIZES = (64, 128)
CAMERA_BACKENDS = ("gl", "raycast")
CAMERA_KEYS = {"front": C.FRONT_CAMERA, "wrist": C.WRIST_CAMERA}
CAMERA_OUTPUTS = ("rgb", "depth", "seg")


@dataclass
class RobotEnvConfig:
    """Options every robot task accepts as ``gymnasium.make`` kwargs (all JSON-serialisable)."""

    control_mode: str = "ee_delta"
    """``ee_delta``: action [4] = (dx, dy, dz) in [-1, 1] scaled by ``max_ee_step`` + gripper;
    ``joint``: action [7] = 6 joint targets normalised to the joint ranges + gripper. Gripper -1 open, +1 closed."""
    obs_mode: str = "state"
    """``state``: proprioception, object poses, task vectors (cue while lit); ``rgbd``: proprioception plus
    front and wrist camera RGB, depth (metres) and segmentation (body ids)."""
    image_size: int = 64
    """Square camera resolution for ``rgbd`` (64 or 128)."""
    frame_skip: int = 20
    """Physics substeps (2 ms each) per env step: 20 -> 25 Hz control."""
    max_ee_step: float = 0.03
    """End-effector displacement (m) commanded by a full-scale ``ee_delta`` action in one env step."""
    init_joint_noise: float = 0.02
    """Uniform noise (rad) added to the home joint angles at reset."""
    cameras: tuple[str, ...] = ("front", "wrist")
    """Cameras of ``rgbd`` observations, a non-empty subset of ``front`` (fixed, sees the table, cue panel and
    go lamp) and ``wrist`` (on the gripper), in that order."""
    camera_outputs: tuple[str, ...] = CAMERA_OUTPUTS
    """Images per camera in ``rgbd`` observations, a non-empty subset of ``rgb``, ``depth`` and ``seg`` (as
    Habitat's sensor list: an agent that reads colour only is not handed depth and segmentation to store)."""
    camera_backend: str = "gl"
    """How ``rgbd`` cameras are rendered: ``gl``, MuJoCo's OpenGL renderer (three passes per camera, the reference
    image with shadows and textures); ``raycast``, one ``mj_multiRay`` per camera with the nav renderers' Lambert
    shading (:mod:`chronotope.envs.robot.raycast`: the same depth and segmentation, flat-shaded colour, ~4x faster
    here and threaded across the worlds of a vector env)."""
    max_depth: float = 5.0
    """Depth clip (m) of the ``rgbd`` cameras: a pixel whose ray hits nothing, or hits beyond it, reads
    ``max_depth`` (segmentation 0: background), as in the nav envs. The default keeps the whole table and the floor
    the front camera sees (farthest hit about 3.8 m)."""

    def __post_init__(self) -> None:
        if self.control_mode not in CONTROL_MODES:
            raise ValueError(f"control_mode={self.control_mode!r}; expected one of {CONTROL_MODES}")
        if self.obs_mode not in OBS_MODES:
            raise ValueError(f"obs_mode={self.obs_mode!r}; expected one of {OBS_MODES}")
        if isinstance(self.cameras, str):
            raise ValueError(f"cameras={self.cameras!r}; expected a sequence of names from {tuple(CAMERA_KEYS)}")
        self.cameras = tuple(self.cameras)
        if not self.cameras or len(set(self.cameras)) != len(self.cameras) or set(self.cameras) - set(CAMERA_KEYS):
            raise ValueError(f"cameras={self.cameras!r}; expected distinct names from {tuple(CAMERA_KEYS)}")
        self.cameras = tuple(c for c in CAMERA_KEYS if c in self.cameras)
        outputs = self.camera_outputs
        if (
            isinstance(outputs, str)
            or not outputs
            or len(set(outputs)) != len(outputs)
            or set(outputs) - set(CAMERA_OUTPUTS)
        ):
            raise ValueError(f"camera_outputs={outputs!r}; expected distinct names from {CAMERA_OUTPUTS}")
        self.camera_outputs = tuple(o for o in CAMERA_OUTPUTS if o in outputs)
        if self.camera_backend not in CAMERA_BACKENDS:
            raise ValueError(f"camera_backend={self.camera_backend!r}; expected one of {CAMERA_BACKENDS}")
        if self.image_size not in IMAGE_SIZES:
            raise ValueError(f"image_size={self.image_size!r}; expected one of {IMAGE_SIZES}")
        if not (isinstance(self.frame_skip, int) and self.frame_skip >= 1):
            raise ValueError(f"frame_skip={self.frame_skip!r}; expected a positive int")
        if not 0.0 < self.max_ee_step <= 0.1:
            raise ValueError(f"max_ee_step={self.max_ee_step!r}; expected in (0, 0.1] m")
        if not 0.0 <= self.init_joint_noise <= 0.2:
            raise ValueError(f"init_joint_noise={self.init_joint_noise!r}; expected in [0, 0.2] rad")
        if isinstance(self.max_depth, bool) or not (
            isinstance(self.max_depth, (int, float, np.floating)) and 0.0 < self.max_depth < np.inf
        ):
            raise ValueError(f"max_depth={self.max_depth!r}; expected a positive finite distance (m)")


def make_config(cls: type, kwargs: dict[str, Any]) -> Any:
    """Builds config ``cls`` from kwargs; unknown names raise ValueError naming them."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise ValueError(f"unknown kwarg(s) {unknown} for {cls.__name__}; known: {sorted(known)}")
    return cls(**kwargs)


def _box(shape: tuple[int, ...], low: float = -np.inf, high: float = np.inf) -> spaces.Box:
    return spaces.Box(low=low, high=high, shape=shape, dtype=np.float32)


class RobotEnv(gym.Env):
    """Base class of the arm tasks; not registered itself (see the task modules for task sheets).

    Observations (``state`` mode, a Dict of float32 arrays):
        joint_pos [6], joint_vel [6] (rad, rad/s), gripper_width [1] (m between pads), ee_pos [3] (m),
        ee_quat [4] (w, x, y, z), plus the task's keys (object poses, goals, cue, phase).
    Observations (``rgbd`` mode): the proprioceptive keys above, the task's non-privileged keys, and per camera
        ``<cam>_rgb`` [H, W, 3] uint8, ``<cam>_depth`` [H, W, 1] float32 metres in ``[0, max_depth]``
        (``max_depth`` where no surface is hit within it, as in the nav envs), ``<cam>_seg`` [H, W, 1] int32 body
        ids (0 = world/background), for cam in ``cameras`` (default front and wrist), rendered by
        ``camera_backend`` (MuJoCo's GL renderer, or ray casting: :mod:`chronotope.envs.robot.raycast`).
        The cue panel and go lamp are visible in the front camera; for ``gl``, MUJOCO_GL must be set (this package
        sets ``egl`` by default) before mujoco is first imported.
    Actions: see :class:`RobotEnvConfig.control_mode`; values outside [-1, 1] or non-finite raise ValueError.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 25}
    Config: ClassVar[type] = RobotEnvConfig
    reward_terms: ClassVar[tuple[str, ...]] = ()
    """Names of the reward terms this task reports (``info["reward_<name>"]``)."""
    privileged_keys: ClassVar[tuple[str, ...]] = ()
    """Task observation keys that exist only in ``state`` mode (e.g. object poses, the cue channel)."""

    def __init__(self, render_mode: str | None = None, **kwargs: Any):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode={render_mode!r}; expected None or 'rgb_array'")
        self.render_mode = render_mode
        self.cfg = make_config(self.Config, kwargs)
        if getattr(self.cfg, "approach_reward", 0.0) and type(self).answer_points is RobotEnv.answer_points:
            raise ValueError(
                f"approach_reward={self.cfg.approach_reward!r}: {type(self).__name__} has no answer points to shape "
                "towards (its answer is not a touch); keep it 0"
            )

        spec = mujoco.MjSpec.from_file(str(C.SCENE_XML))
        self._build(spec)
        self.model: mujoco.MjModel = spec.compile()
        self.data = mujoco.MjData(self.model)
        m = self.model
        self.dt = m.opt.timestep * self.cfg.frame_skip

        self._arm_qadr = np.array([m.joint(n).qposadr[0] for n in C.ARM_JOINTS])
        self._arm_dadr = np.array([m.joint(n).dofadr[0] for n in C.ARM_JOINTS])
        self._finger_qadr = np.array([m.joint(n).qposadr[0] for n in C.FINGER_JOINTS])
        self._arm_act = np.array([m.actuator(n).id for n in C.ARM_ACTUATORS])
        self._grip_act = m.actuator(C.GRIPPER_ACTUATOR).id
        self._tcp = m.site(C.TCP_SITE).id
        self._cue_geom = m.geom(C.CUE_PANEL_GEOM).id
        self._go_geom = m.geom(C.GO_LAMP_GEOM).id
        self._pad_geoms = np.array([m.geom(n).id for n in C.FINGER_PADS])
        self._joint_ctrl = JointPositionController(m)
        self._ik = DLSIKController(m)

        n_act = 4 if self.cfg.control_mode == "ee_delta" else 7
        self.action_space = spaces.Box(-1.0, 1.0, shape=(n_act,), dtype=np.float32)
        state_spaces = {
            "joint_pos": _box((6,)),
            "joint_vel": _box((6,)),
            "gripper_width": _box((1,)),
            "ee_pos": _box((3,)),
            "ee_quat": _box((4,), -1.0, 1.0),
        }
        task_spaces = self._task_obs_spaces()
        if self.cfg.obs_mode == "state":
            obs_spaces = {**state_spaces, **task_spaces}
        else:
            obs_spaces = {**state_spaces, **{k: v for k, v in task_spaces.items() if k not in self.privileged_keys}}
            s = self.cfg.image_size
            image_spaces = {
                "rgb": spaces.Box(0, 255, (s, s, 3), np.uint8),
                "depth": spaces.Box(0.0, self.cfg.max_depth, (s, s, 1), np.float32),
                "seg": spaces.Box(0, m.nbody - 1, (s, s, 1), np.int32),
            }
            for cam in self.cfg.cameras:
                for out in self.cfg.camera_outputs:
                    obs_spaces[f"{cam}_{out}"] = image_spaces[out]
        self.observation_space = spaces.Dict(obs_spaces)

        self._renderer: Any = None
        self._raycast: dict[str, RaycastCamera] = {}
        self.defer_images = False
        """Set by the vector env: ``_get_obs`` leaves the camera keys out, for the vector env to render all worlds
        at once (:meth:`render_cameras`)."""
        self._step_count = 0
        self._q_home = C.HOME_QPOS.copy()
        self._q_cmd = C.HOME_QPOS.copy()
        self._ee_target = np.zeros(3)
        self._grip_cmd = C.GRIPPER_OPEN

    # ----------------------------------------------------------------------------------------- task hooks
    def _build(self, spec: mujoco.MjSpec) -> None:
        """Adds task bodies to the scene spec (called once, before compiling)."""

    def _initialize_episode(self) -> None:
        """Samples the episode (object poses, cues) with ``self.np_random``; arm is already at home."""

    def _update_scene(self) -> None:
        """Per-step scene changes (lamps, distractors), called after reset and after each physics step."""

    def _task_obs_spaces(self) -> dict[str, spaces.Box]:
        return {}

    def _task_obs(self) -> dict[str, np.ndarray]:
        return {}

    def _evaluate(self) -> tuple[bool, dict[str, float], dict[str, Any]]:
        """Returns (terminated, reward terms, measures incl. ``success``) for the current state."""
        return False, {}, {"success": False}

    def _shaping_terms(self) -> dict[str, float]:
        """Optional shaping terms added to the task's own after each step (not at reset); none in the base (the
        memory tasks' ``approach`` term: :class:`~chronotope.envs.robot.tasks.common.PhasedMemoryTaskEnv`)."""
        return {}

    def answer_points(self) -> np.ndarray:
        """Points [n, 3] (m, world) a finger must reach to give each possible answer (the tops of the cups, pads,
        buttons), in any order: what a memory task's ``approach_reward`` shapes towards. Tasks whose answer is a
        touch fill it; the others refuse a non-zero ``approach_reward`` at construction."""
        raise NotImplementedError(f"{type(self).__name__} has no answer points")

    # ----------------------------------------------------------------------------------------- memory demand
    def controllable(self) -> bool:
        """Whether the next action (the one taken on the current observation) is the agent's own. False during a
        scripted phase that holds the arm (the action is checked, then ignored); imitation losses skip such steps.
        The base tasks are controllable at every step."""
        return True

    def cue_to_query_span(self) -> int:
        """Most env steps between the last informative observation and the decision that needs it, at the current
        settings (0: the task needs no memory). Trainers warn when their gradient truncation is shorter."""
        return 0

    def memoryless_bound(self) -> float:
        """Success rate of the best policy that sees only the current observation, assuming perfect motor skill
        (multiply by the perfect oracle's success for the expected measured value; 1.0: memory cannot help).
        Memory tasks override it with their Bayes-guess derivation (see their task sheets)."""
        return 1.0

    # ----------------------------------------------------------------------------------------- helpers
    @property
    def ee_pos(self) -> np.ndarray:
        """Tool centre point position [3] (m, world frame)."""
        return self.data.site_xpos[self._tcp].copy()

    @property
    def step_count(self) -> int:
        """Env steps taken since the last reset."""
        return self._step_count

    def gripper_width(self) -> float:
        """Gap between the finger pads (m)."""
        return float(self.data.qpos[self._finger_qadr].sum())

    def set_free_body_pose(self, joint_name: str, pos: np.ndarray, quat: np.ndarray | None = None) -> None:
        """Teleports a free-jointed body and zeroes its velocity (call ``mj_forward`` afterwards)."""
        j = self.model.joint(joint_name)
        a, v = j.qposadr[0], j.dofadr[0]
        self.data.qpos[a : a + 3] = pos
        self.data.qpos[a + 3 : a + 7] = (1.0, 0.0, 0.0, 0.0) if quat is None else quat
        self.data.qvel[v : v + 6] = 0.0

    def free_body_pose(self, joint_name: str) -> np.ndarray:
        """Position and quaternion [7] of a free-jointed body."""
        a = self.model.joint(joint_name).qposadr[0]
        return self.data.qpos[a : a + 7].copy()

    def in_contact(self, geoms_a: np.ndarray, geom_b: int) -> bool:
        """Whether any geom of ``geoms_a`` touches ``geom_b`` in the current contact list."""
        d = self.data
        if d.ncon == 0:
            return False
        g1, g2 = d.contact.geom1[: d.ncon], d.contact.geom2[: d.ncon]
        return bool(np.any((np.isin(g1, geoms_a) & (g2 == geom_b)) | (np.isin(g2, geoms_a) & (g1 == geom_b))))

    def set_cue_rgba(self, rgba: np.ndarray | tuple[float, ...]) -> None:
        self.model.geom_rgba[self._cue_geom] = rgba

    def set_go_lamp(self, on: bool) -> None:
        self.model.geom_rgba[self._go_geom] = C.GO_ON_RGBA if on else C.GO_OFF_RGBA

    # ----------------------------------------------------------------------------------------- gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        noise = self.np_random.uniform(-self.cfg.init_joint_noise, self.cfg.init_joint_noise, size=6)
        q0 = C.HOME_QPOS + noise
        d.qpos[self._arm_qadr] = q0
        d.qpos[self._finger_qadr] = C.GRIPPER_OPEN
        self._q_home = q0.copy()
        self._q_cmd = q0.copy()
        self._grip_cmd = C.GRIPPER_OPEN
        d.ctrl[self._arm_act] = q0
        d.ctrl[self._grip_act] = C.GRIPPER_OPEN
        self._step_count = 0
        self.set_cue_rgba(C.CUE_OFF_RGBA)
        self.set_go_lamp(False)
        self._initialize_episode()
        mujoco.mj_forward(m, d)
        self._ee_target = self.ee_pos
        self._update_scene()
        mujoco.mj_forward(m, d)
        _, _, measures = self._evaluate()
        return self._get_obs(), {**measures}

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        held = self._apply_action(self._check_action(action))
        mujoco.mj_step(self.model, self.data, nstep=self.cfg.frame_skip)
        return self._finish_step(held)

    # The step in three parts, so that :class:`~chronotope.envs.robot.vector_env.RobotVectorEnv` runs the same
    # code for each of its worlds around one batched physics call.
    def _apply_action(self, a: np.ndarray) -> bool:
        """Turns a checked action [action_dim] (float64) into actuator targets in ``data.ctrl``; returns whether
        the step is a scripted hold (the action ignored)."""
        d = self.data
        held = not self.controllable()
        if held:  # scripted hold: the arm servoes to its start pose with the gripper open, whatever the action
            self._q_cmd = self._q_home.copy()
            self._grip_cmd = C.GRIPPER_OPEN
        else:
            self._grip_cmd = C.GRIPPER_OPEN * 0.5 * (1.0 - float(a[-1]))
            if self.cfg.control_mode == "ee_delta":
                target = self._ee_target + a[:3] * self.cfg.max_ee_step
                target = np.clip(target, C.WORKSPACE_LOW, C.WORKSPACE_HIGH)
                # Bound how far the target may lead the hand, so a blocked arm does not wind up a large command.
                ee = self.ee_pos
                self._ee_target = ee + np.clip(target - ee, -0.06, 0.06)
                self._q_cmd = self._ik.solve(self._q_cmd, self._ee_target)
            else:
                self._q_cmd = self._joint_ctrl.targets(a[:6])
        d.ctrl[self._arm_act] = self._q_cmd
        d.ctrl[self._grip_act] = self._grip_cmd
        return held

    def _finish_step(self, held: bool) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """After the ``frame_skip`` physics steps: scene updates, evaluation and the step's return values."""
        m, d = self.model, self.data
        if not np.all(np.isfinite(d.qpos)):
            raise RuntimeError(f"physics diverged at step {self._step_count} (qpos={d.qpos})")
        self._step_count += 1
        self._update_scene()
        mujoco.mj_forward(m, d)
        if held:  # the first free ee_delta action moves from where the hand is
            self._ee_target = self.ee_pos
        terminated, terms, measures = self._evaluate()
        terms = {**terms, **self._shaping_terms()}
        reward = float(sum(terms.values()))
        info = {**measures, **{f"reward_{k}": float(v) for k, v in terms.items()}}
        return self._get_obs(), reward, terminated, False, info

    def _check_action(self, action: Any) -> np.ndarray:
        a = np.asarray(action, dtype=np.float64)
        if a.shape != self.action_space.shape:
            raise ValueError(f"action shape {a.shape}; expected {self.action_space.shape} (action={action!r})")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"action has non-finite entries: {a.tolist()}")
        if np.any(a < -1.0) or np.any(a > 1.0):
            raise ValueError(f"action out of range [-1, 1]: {a.tolist()}")
        return a

    def _get_obs(self) -> dict[str, np.ndarray]:
        d = self.data
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, d.site_xmat[self._tcp])
        obs = {
            "joint_pos": d.qpos[self._arm_qadr],
            "joint_vel": d.qvel[self._arm_dadr],
            "gripper_width": np.array([self.gripper_width()]),
            "ee_pos": d.site_xpos[self._tcp],
            "ee_quat": quat,
            **self._task_obs(),
        }
        if self.cfg.obs_mode == "rgbd":
            obs = {k: v for k, v in obs.items() if k not in self.privileged_keys}
            if not self.defer_images:
                obs.update(self.render_cameras())
        return {
            k: np.asarray(v, dtype=self.observation_space[k].dtype).reshape(self.observation_space[k].shape)
            for k, v in obs.items()
        }

    # ----------------------------------------------------------------------------------------- rendering
    def _get_renderer(self) -> Any:
        if self._renderer is None:
            s = self.cfg.image_size if self.cfg.obs_mode == "rgbd" else 128
            self._renderer = mujoco.Renderer(self.model, s, s)
        return self._renderer

    def _update_render_scene(self, r: Any, camera: str) -> None:
        """``r.update_scene(self.data, camera)``, but from this env's own model: a renderer may be shared by several
        envs of one scene (the vector env renders its N worlds with one), whose models differ in what the tasks
        change per episode (cue and lamp colours, static body poses)."""
        cam = mujoco.MjvCamera()
        cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
        cam.fixedcamid = self.model.camera(camera).id
        mujoco.mjv_updateScene(
            self.model, self.data, mujoco.MjvOption(), None, cam, int(mujoco.mjtCatBit.mjCAT_ALL), r.scene
        )

    def render_cameras(self) -> dict[str, np.ndarray]:
        """The ``rgbd`` camera keys (``<cam>_rgb``, ``<cam>_depth``, ``<cam>_seg``, those of ``camera_outputs``) of
        the current state, from the configured ``camera_backend``."""
        out = self._render_all_cameras()
        if len(self.cfg.camera_outputs) == len(CAMERA_OUTPUTS):
            return out
        return {k: v for k, v in out.items() if k.rsplit("_", 1)[1] in self.cfg.camera_outputs}

    def _render_all_cameras(self) -> dict[str, np.ndarray]:
        if self.cfg.camera_backend == "raycast":
            out: dict[str, np.ndarray] = {}
            for key in self.cfg.cameras:
                cam = self._raycast.get(key)
                if cam is None:
                    cam = self._raycast[key] = RaycastCamera(
                        self.model, CAMERA_KEYS[key], self.cfg.image_size, self.cfg.max_depth
                    )
                out[f"{key}_rgb"], out[f"{key}_depth"], out[f"{key}_seg"] = cam.render(self.model, self.data)
            return out
        r = self._get_renderer()
        out = {}
        for key in self.cfg.cameras:
            cam = CAMERA_KEYS[key]
            self._update_render_scene(r, cam)
            out[f"{key}_rgb"] = r.render().copy()
            r.enable_segmentation_rendering()
            seg = r.render()  # [H, W, 2]: (object id, object type); -1 where nothing is hit
            r.disable_segmentation_rendering()
            r.enable_depth_rendering()
            depth = r.render()  # linear depth, metres
            r.disable_depth_rendering()
            hit = (seg[..., 0] >= 0) & (depth <= self.cfg.max_depth)  # beyond the clip: background
            is_geom = hit & (seg[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM))
            body = np.where(is_geom, self.model.geom_bodyid[np.maximum(seg[..., 0], 0)], 0)
            out[f"{key}_depth"] = np.where(hit, depth, self.cfg.max_depth)[..., None].astype(np.float32)
            out[f"{key}_seg"] = body[..., None].astype(np.int32)
        return out

    def render(self) -> np.ndarray | None:
        """Front camera RGB [H, W, 3] uint8 when ``render_mode='rgb_array'``."""
        if self.render_mode != "rgb_array":
            return None
        r = self._get_renderer()
        self._update_render_scene(r, C.FRONT_CAMERA)
        return r.render().copy()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # The GL renderer cannot be pickled; it is rebuilt on first use after unpickling.
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_renderer"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def config_dict(self) -> dict[str, Any]:
        """The resolved config as a JSON-serialisable dict."""
        return dataclasses.asdict(self.cfg)
