"""MuJoCo arm environments: a 6-DoF arm with a parallel gripper on a tabletop, sanity and memory tasks.

Importing this package does not import MuJoCo; ``registration.register_robot_envs`` registers the ids with
string entry points. Headless rendering defaults to EGL (set ``MUJOCO_GL`` before importing to override).
"""

import os

# Must happen before mujoco is first imported anywhere; setdefault keeps a user's choice (e.g. osmesa).
os.environ.setdefault("MUJOCO_GL", "egl")
