"""Environment wrappers."""

from chronotope.envs.wrappers.recording import TrajectoryRecorder

__all__ = ["TrajectoryRecorder"]
