"""Arm controllers: joint position targets, and end-effector delta position via damped least-squares IK.

Both write position-actuator targets into ``data.ctrl``; MuJoCo's position servos (with gravity compensation
on the arm bodies) then track them during the physics substeps.
"""

from __future__ import annotations

import mujoco
import numpy as np

from chronotope.envs.robot import arm_constants as C


class JointPositionController:
    """Maps normalised joint targets in [-1, 1] onto the joint ranges.

    Args:
        model: compiled scene containing the arm of :mod:`arm_constants`.
    """

    def __init__(self, model: mujoco.MjModel):
        self.act_ids = np.array([model.actuator(n).id for n in C.ARM_ACTUATORS])
        self.low = model.actuator_ctrlrange[self.act_ids, 0].copy()
        self.high = model.actuator_ctrlrange[self.act_ids, 1].copy()

    def targets(self, action: np.ndarray) -> np.ndarray:
        """Joint targets (rad) for normalised ``action`` [6] in [-1, 1]."""
        return self.low + 0.5 * (action + 1.0) * (self.high - self.low)

    def normalise(self, q: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`targets`: joint angles [6] -> normalised action [6]."""
        return 2.0 * (q - self.low) / (self.high - self.low) - 1.0


class DLSIKController:
    """End-effector position control with a fixed top-down tool orientation, by damped least squares.

    The solver iterates on a private ``MjData`` from the previously commanded joint targets (not the measured
    joints), so the command is a smooth, deterministic function of the target sequence.

    Args:
        model: compiled scene containing the arm.
        damping: DLS damping lambda; larger is steadier near singularities, slower to converge.
        iterations: DLS iterations per control step.
        max_joint_step: cap (rad) on each joint's change per iteration, against jumps near singularities.
        rot_weight: weight of the orientation error (rad) against the position error (m).
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        damping: float = 0.03,
        iterations: int = 3,
        max_joint_step: float = 0.2,
        rot_weight: float = 0.5,
    ):
        self.model = model
        self.data = mujoco.MjData(model)
        self.site = model.site(C.TCP_SITE).id
        self.qadr = np.array([model.joint(n).qposadr[0] for n in C.ARM_JOINTS])
        self.dadr = np.array([model.joint(n).dofadr[0] for n in C.ARM_JOINTS])
        self.qlow = model.jnt_range[[model.joint(n).id for n in C.ARM_JOINTS], 0].copy()
        self.qhigh = model.jnt_range[[model.joint(n).id for n in C.ARM_JOINTS], 1].copy()
        self.damping = damping
        self.iterations = iterations
        self.max_joint_step = max_joint_step
        self.rot_weight = rot_weight
        self.target_quat = C.TCP_DOWN_QUAT.astype(np.float64)
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))

    def solve(self, q_start: np.ndarray, target_pos: np.ndarray) -> np.ndarray:
        """Joint targets [6] that bring the tool centre point towards ``target_pos`` [3] pointing down."""
        m, d = self.model, self.data
        q = q_start.astype(np.float64).copy()
        cur_quat = np.zeros(4)
        rot = np.zeros(3)
        lam2 = self.damping**2
        for _ in range(self.iterations):
            d.qpos[self.qadr] = q
            mujoco.mj_kinematics(m, d)
            mujoco.mj_comPos(m, d)
            mujoco.mj_jacSite(m, d, self._jacp, self._jacr, self.site)
            mujoco.mju_mat2Quat(cur_quat, d.site_xmat[self.site])
            # subQuat gives the rotation in the current (local) frame; the Jacobian is in world frame.
            mujoco.mju_subQuat(rot, self.target_quat, cur_quat)
            err = np.concatenate(
                [target_pos - d.site_xpos[self.site], self.rot_weight * d.site_xmat[self.site].reshape(3, 3) @ rot]
            )
            jac = np.vstack([self._jacp[:, self.dadr], self.rot_weight * self._jacr[:, self.dadr]])  # [6, 6]
            dq = jac.T @ np.linalg.solve(jac @ jac.T + lam2 * np.eye(6), err)
            q = np.clip(q + np.clip(dq, -self.max_joint_step, self.max_joint_step), self.qlow, self.qhigh)
        return q

    def forward(self, q: np.ndarray) -> np.ndarray:
        """Tool centre point position [3] at joint angles ``q`` [6]."""
        self.data.qpos[self.qadr] = q
        mujoco.mj_kinematics(self.model, self.data)
        return self.data.site_xpos[self.site].copy()
