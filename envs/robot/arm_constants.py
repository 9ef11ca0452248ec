"""Constants of the Chronotope arm and its tabletop scene: XML paths and body/site/joint/actuator names.

Everything that names something in ``assets/robot/*.xml`` lives here, so a renamed element breaks in one place.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

ASSET_DIR: Path = Path(__file__).resolve().parents[2] / "assets" / "robot"
"""Folder of the MJCF files (``arm.xml`` is included by ``scene.xml``)."""
ARM_XML: Path = ASSET_DIR / "arm.xml"
SCENE_XML: Path = ASSET_DIR / "scene.xml"

ARM_JOINTS: tuple[str, ...] = ("shoulder_pan", "shoulder_lift", "elbow", "wrist_1", "wrist_2", "wrist_3")
"""Arm joints, base to flange; each has a position actuator of the same name."""
ARM_ACTUATORS: tuple[str, ...] = ARM_JOINTS
FINGER_JOINTS: tuple[str, str] = ("left_finger", "right_finger")
GRIPPER_ACTUATOR = "gripper"
FINGER_PADS: tuple[str, str] = ("left_pad", "right_pad")
GRIPPER_OPEN = 0.04
"""Finger joint target when open (metres per side; an 8 cm gap)."""
GRIPPER_CLOSED = 0.0

TCP_SITE = "tcp"
GRIPPER_BODY = "gripper"
FRONT_CAMERA = "front_cam"
WRIST_CAMERA = "wrist_cam"
CAMERAS: tuple[str, str] = (FRONT_CAMERA, WRIST_CAMERA)
CUE_PANEL_GEOM = "cue_panel"
GO_LAMP_GEOM = "go_lamp"
TABLE_GEOM = "table_top"

HOME_QPOS: np.ndarray = np.array([0.0, 0.1072, 1.8935, 1.1409, 0.0, 0.0])
"""Arm joint angles (rad) that put the tool centre point at ~(0.4, 0, 0.25) pointing straight down."""

TCP_DOWN_QUAT: np.ndarray = np.array([0.0, 0.0, 1.0, 0.0])
"""World orientation (w, x, y, z) of the ``gripper`` frame pointing down: a half turn about world y,
so the fingers open along world y."""

WORKSPACE_LOW: np.ndarray = np.array([0.25, -0.32, 0.02])
"""Lower corner (m) of the box the end-effector controller keeps the tool centre point in."""
WORKSPACE_HIGH: np.ndarray = np.array([0.65, 0.32, 0.35])
"""Upper corner (m) of that box."""
TABLE_HEIGHT = 0.0
"""The table top is the plane z = 0."""

CUE_OFF_RGBA: np.ndarray = np.array([0.3, 0.3, 0.3, 1.0])
GO_OFF_RGBA: np.ndarray = np.array([0.15, 0.15, 0.15, 1.0])
GO_ON_RGBA: np.ndarray = np.array([1.0, 1.0, 1.0, 1.0])

PALETTE: dict[str, tuple[float, float, float, float]] = {
    "red": (0.9, 0.1, 0.1, 1.0),
    "green": (0.1, 0.8, 0.15, 1.0),
    "blue": (0.1, 0.25, 0.95, 1.0),
    "yellow": (0.95, 0.85, 0.1, 1.0),
    "magenta": (0.85, 0.1, 0.85, 1.0),
}
"""Block and cue colours, in the order colour ids are assigned."""
