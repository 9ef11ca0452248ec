"""One scan for every diagonal linear recurrence ``h_t = a_t * h_(t-1) + b_t`` (see ``specs/ssm.md``).

Used by the minGRU, FFM, LRU and selective-SSM memories. ``a`` and ``b`` are ``[B, T, ...]``, real or complex;
``h0 [B, ...]`` is the carried state. An episode start at ``(row, t)`` sets ``a_t = 0`` for that row, which is
exact: ``h_t = b_t`` and nothing earlier reaches later steps. The carried state enters as
``b_0 <- b_0 + a_0 * h0`` (after the zeroing), and the scan then runs from zero.

Paths, which compute one function (the tests check them against each other):

* ``loop``: a Python loop over t, the reference and the T = 1 path;
* ``doubling``: Hillis-Steele, ``log2 T`` rounds of ``b[t] += a[t] b[t-k]; a[t] *= a[t-k]`` (out of place, so
  autograd can differentiate it); no division, exact zeros, complex works; backward memory O(T log T);
  with ``chunk`` set, doubling runs inside chunks of that many steps and a loop carries h between chunks, which
  bounds the memory at O(T log chunk);
* :func:`log_doubling_scan`: the doubling scan on ``(log a, log b)`` for positive recurrences (minGRU); a start
  is ``log a = -inf`` and gradients stay finite.

The spec's third path (a T x T masked sum per chunk, ``exp(cumsum log a)``) is not built: it needs the log of
``a``, which is ``-inf`` where a gate saturates to exactly 0 in float32, and chunked doubling bounds memory as well.
"""

from __future__ import annotations

import torch


def _expand_mask(starts: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``[B, T]`` bool -> broadcastable against ``like [B, T, ...]``."""
    return starts.reshape(*starts.shape, *([1] * (like.dim() - 2)))


def prepare(
    a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None, starts: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Zeroes ``a`` at starts and folds the carried state into ``b_0``; returns the new ``(a, b)``."""
    a = a.expand_as(b) if a.shape != b.shape else a
    if starts is not None:
        a = torch.where(_expand_mask(starts.to(torch.bool), a), torch.zeros((), dtype=a.dtype, device=a.device), a)
    if h0 is not None and b.shape[1] > 0:
        b = torch.cat([(b[:, 0] + a[:, 0] * h0).unsqueeze(1), b[:, 1:]], dim=1)
    return a, b


def _doubling(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    t = b.shape[1]
    k = 1
    while k < t:
        b = torch.cat([b[:, :k], b[:, k:] + a[:, k:] * b[:, :-k]], dim=1)
        a = torch.cat([a[:, :k], a[:, k:] * a[:, :-k]], dim=1)
        k *= 2
    return b


def _loop(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if b.shape[1] == 0:
        return b
    # unbind, not a[:, i]: the backward of T selects writes T full-size zero gradients (O(T^2) memory traffic).
    a_s, b_s = a.unbind(1), b.unbind(1)
    outs = [b_s[0]]
    for a_t, b_t in zip(a_s[1:], b_s[1:]):
        outs.append(a_t * outs[-1] + b_t)
    return torch.stack(outs, dim=1)


def linear_scan(
    a: torch.Tensor,
    b: torch.Tensor,
    h0: torch.Tensor | None = None,
    starts: torch.Tensor | None = None,
    mode: str = "doubling",
    chunk: int | None = None,
) -> torch.Tensor:
    """``h_t = a_t * h_(t-1) + b_t`` over ``t``, cleared where ``starts``.

    Args:
        a: ``[B, T, ...]`` (or broadcastable to ``b``) decay, real or complex.
        b: ``[B, T, ...]`` input.
        h0: ``[B, ...]`` carried state (``None``: zeros).
        starts: ``[B, T]`` bool; true sets ``a_t = 0`` for that row.
        mode: ``"doubling"`` or ``"loop"``.
        chunk: with ``"doubling"``, run it in chunks of this many steps (``None``: one chunk).

    Returns:
        ``h [B, T, ...]``; ``h[:, -1]`` is the state to carry.
    """
    if mode not in ("doubling", "loop"):
        raise ValueError(f"scan mode must be 'doubling' or 'loop', got {mode!r}")
    if chunk is not None and (not isinstance(chunk, int) or chunk < 1):
        raise ValueError(f"scan chunk must be a positive int or None, got {chunk!r}")
    a, b = prepare(a, b, h0, starts)
    if mode == "loop":
        return _loop(a, b)
    t = b.shape[1]
    if chunk is None or chunk >= t:
        return _doubling(a, b)
    outs = []
    carry = None
    for s in range(0, t, chunk):
        a_c, b_c = a[:, s : s + chunk], b[:, s : s + chunk]
        if carry is not None:
            b_c = torch.cat([(b_c[:, 0] + a_c[:, 0] * carry).unsqueeze(1), b_c[:, 1:]], dim=1)
        h_c = _doubling(a_c, b_c)
        carry = h_c[:, -1]
        outs.append(h_c)
    return torch.cat(outs, dim=1)


def log_doubling_scan(
    log_a: torch.Tensor,
    log_b: torch.Tensor,
    log_h0: torch.Tensor | None = None,
    starts: torch.Tensor | None = None,
) -> torch.Tensor:
    """The doubling scan in log space, for ``a, b > 0``: returns ``log h [B, T, ...]``.

    A start sets ``log a_t = -inf``; ``log_h0`` may be ``-inf`` (a zero state). Only additions and
    ``logaddexp`` are used, so there is no overflow and gradients stay finite while ``log_b`` is finite.
    """
    if starts is not None:
        log_a = log_a.masked_fill(_expand_mask(starts.to(torch.bool), log_a), float("-inf"))
    if log_h0 is not None and log_b.shape[1] > 0:
        first = torch.logaddexp(log_b[:, 0], log_a[:, 0] + log_h0)
        log_b = torch.cat([first.unsqueeze(1), log_b[:, 1:]], dim=1)
    t = log_b.shape[1]
    k = 1
    while k < t:
        log_b = torch.cat([log_b[:, :k], torch.logaddexp(log_b[:, k:], log_a[:, k:] + log_b[:, :-k])], dim=1)
        log_a = torch.cat([log_a[:, :k], log_a[:, k:] + log_a[:, :-k]], dim=1)
        k *= 2
    return log_b


def causal_depthwise_conv(
    x: torch.Tensor, buffer: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, starts: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal depthwise convolution over time that never reads a tap from before a row's episode start.

    Args:
        x: ``[B, T, C]`` inputs.
        buffer: ``[B, C, K-1]`` the last K-1 inputs of earlier calls (zeros where cleared).
        weight: ``[C, K]``; ``weight[:, K-1]`` multiplies the current input (``nn.Conv1d`` order).
        bias: ``[C]`` or ``None``.
        starts: ``[B, T]`` bool episode starts.

    Returns:
        ``y [B, T, C]`` and the new buffer ``[B, C, K-1]`` (inputs from before the row's last start zeroed).
    """
    b, t, c = x.shape
    k = weight.shape[1]
    xp = torch.cat([buffer, x.transpose(1, 2)], dim=2)  # [B, C, K-1+T]
    epi = starts.long().cumsum(dim=1)  # [B, T]; the buffer belongs to episode 0
    epi_p = torch.cat([torch.zeros(b, k - 1, dtype=epi.dtype, device=epi.device), epi], dim=1)  # [B, K-1+T]
    win = xp.unfold(2, k, 1)  # [B, C, T, K]
    same = (epi_p.unfold(1, k, 1) == epi[:, :, None]).to(x.dtype)  # [B, T, K]
    y = (win * same[:, None] * weight[None, :, None, :]).sum(-1)  # [B, C, T]
    if bias is not None:
        y = y + bias[None, :, None]
    new_buf = xp[:, :, xp.shape[2] - (k - 1) :]  # [B, C, K-1]
    keep = (epi_p[:, epi_p.shape[1] - (k - 1) :] == epi_p[:, -1:]).to(x.dtype)  # [B, K-1]
    return y.transpose(1, 2), new_buf * keep[:, None, :]


__all__ = ["causal_depthwise_conv", "linear_scan", "log_doubling_scan", "prepare"]
