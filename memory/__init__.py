"""Learned memories: torch modules trained end to end behind one interface (see :mod:`.base`)."""

from chronotope.memory.base import (
    MemoryModule,
    available_memories,
    make_memory,
    register_memory,
    state_nbytes,
    state_to,
)

__all__ = ["MemoryModule", "available_memories", "make_memory", "register_memory", "state_nbytes", "state_to"]
