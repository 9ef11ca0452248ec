"""GAE and the PPO loss pieces (clipped surrogate, clipped value loss, entropy bonus)."""

from __future__ import annotations

import torch


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    last_value: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over a rollout.

    Args:
        rewards, values, dones: [T, N]; ``dones[t]`` is 1 when the episode ended at step t (its next state
            belongs to a new episode, so nothing is bootstrapped across it).
        last_value: [N] value of the state after the last step.

    Returns:
        (advantages [T, N], returns [T, N]).
    """
    t_max = rewards.shape[0]
    # Everything but the backward recursion at once: per-step Python loops cost ~4 small ops per step here.
    nonterminal = 1.0 - dones.float()  # [T, N]
    next_values = torch.cat([values[1:], last_value[None]])  # [T, N]
    deltas = rewards + gamma * next_values * nonterminal - values  # [T, N]
    decay = gamma * lam * nonterminal  # [T, N]
    adv = torch.empty_like(rewards)
    last = torch.zeros_like(last_value)
    for t in reversed(range(t_max)):
        last = deltas[t] + decay[t] * last
        adv[t] = last
    return adv, adv + values


def policy_loss(
    new_logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, clip: float, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """-E[min(r A, clip(r, 1-eps, 1+eps) A)] with r = exp(new - old); the mean over ``mask`` (bool) when given."""
    ratio = torch.exp(new_logp - old_logp)
    return -masked_mean(torch.min(ratio * adv, torch.clamp(ratio, 1 - clip, 1 + clip) * adv), mask)


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``x`` over the entries where ``mask`` is true (all entries when it is None)."""
    if mask is None:
        return x.mean()
    return (x * mask).sum() / mask.sum().clamp(min=1)


def value_loss(new_v: torch.Tensor, old_v: torch.Tensor, returns: torch.Tensor, clip: float | None) -> torch.Tensor:
    """0.5 * E[max((v - R)^2, (clip(v, old +- eps) - R)^2)] (unclipped when ``clip`` is None)."""
    if clip is None:
        return 0.5 * ((new_v - returns) ** 2).mean()
    clipped = old_v + torch.clamp(new_v - old_v, -clip, clip)
    return 0.5 * torch.max((new_v - returns) ** 2, (clipped - returns) ** 2).mean()
