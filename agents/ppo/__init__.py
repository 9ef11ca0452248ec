"""Sequence PPO for agents with memory."""
