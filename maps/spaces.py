"""Observation spaces of map features that say what they hold, so encoders can tell them from camera images.

A map crop is a channel-first ``[C, S, S]`` Box, a shape camera images may have too; its type is what marks
it. :class:`EgocentricMapBox` behaves as a plain ``gymnasium.spaces.Box`` everywhere (equality, sampling,
``batch_space``, which returns a plain Box for the batched space); :func:`chronotope.agents.encoders.encoder_for`
reads the type to give the crop :class:`chronotope.agents.encoders.MapEncoder` instead of the camera CNN.
"""

from __future__ import annotations

import gymnasium as gym


class EgocentricMapBox(gym.spaces.Box):
    """An agent-centred map crop ``[C, S, S]`` channel-first (heading up), one bound per channel.

    Used by :class:`chronotope.maps.wrappers.OccupancyKind` (``"occupancy"``: occupied, free, semantic id). A
    space serialised and rebuilt without this module (e.g. to JSON) comes back as a plain Box.
    """

    def __repr__(self) -> str:
        return "EgocentricMap" + super().__repr__()
