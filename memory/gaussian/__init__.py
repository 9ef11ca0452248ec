"""M3-style Gaussian-splat scene memory: a CPU splatting renderer, principal scene components, Gaussian memory
attention, an online scene memory built from posed RGB-D frames, and frozen 2D feature encoders.

No ``MemoryModule`` is registered under "gaussian": this memory is built from posed RGB-D frames, not from the
generic feature sequences ``x[B, T, F]`` of the memory API. Agents use :class:`GaussianSceneMemory` directly
(``add_frame``, ``render_view``, ``locate``, ``summary``). Heavy parts (encoders) load lazily.
"""

from chronotope.memory.gaussian.attention import GaussianMemoryAttention, feature_loss, sample_maps
from chronotope.memory.gaussian.psc import principal_scene_components, psc_update
from chronotope.memory.gaussian.scene_memory import GaussianSceneMemory, SceneMemoryConfig
from chronotope.memory.gaussian.splat import RasterConfig, SplatOutput, SplatRenderer, rasterize

__all__ = [
    "GaussianMemoryAttention",
    "GaussianSceneMemory",
    "RasterConfig",
    "SceneMemoryConfig",
    "SplatOutput",
    "SplatRenderer",
    "feature_loss",
    "principal_scene_components",
    "psc_update",
    "rasterize",
    "sample_maps",
]


def __getattr__(name: str):
    # The wrapper imports gymnasium and the nav stack: loaded on first use only.
    if name == "GaussianMemoryWrapper":
        from chronotope.memory.gaussian.wrapper import GaussianMemoryWrapper

        return GaussianMemoryWrapper
    raise AttributeError(name)
