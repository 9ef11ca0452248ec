"""JanusVLN dual implicit memory (Zeng et al., ICLR 2026, arXiv 2509.22548), small enough to train on a CPU.

Each step's input ``x[B, T, F]`` is one *frame*. Two frozen encoders read it:

* the **visual-semantic encoder** (:class:`SemanticEncoder`) turns the frame into ``P = grid**2`` patch tokens
  (a learned projection of the feature vector, with a learned per-patch position), runs per-frame
  self-attention and a Qwen2.5-VL-style 2x2 patch merger, giving ``M = P / 4`` semantic tokens of the policy
  width;
* the **spatial-geometric encoder** (:class:`SpatialEncoder`) tokenises the frame the same way (its own
  weights) and alternates per-frame attention with cross-frame ("global") attention, VGGT style. The global
  attention of the current frame reads the cached keys/values of earlier frames. Keys are cached *before*
  qk-norm and the 2D rotary embedding; both are applied when the cache is read, with positions per patch,
  so nothing depends on the frame index.

The spatial tokens of the current frame are merged 2x2, passed through norm -> linear -> GELU -> linear to the
policy width (the authors' ``VGGTMerger``) and added to the semantic tokens with weight ``fusion_weight``
(lambda). The trainable **policy core** (:class:`PolicyCore`, standing in for the paper's MLLM) reads the
fused tokens of the current frame plus one learned read-out token; each layer attends over the instruction
tokens, its own cached keys/values of the fused visual tokens of earlier frames (the *semantic memory*: the
MLLM's KV cache in the paper) and the current frame. A learned per-head bias on the frame age (clipped at
``n_window + 1``) gives the policy the order of the frames it remembers. The read-out token's final state is
the output ``y[B, T, policy_width]``.

**Dual cache, retention.** Both caches keep keys/values per layer along the frame dimension in
``n_init + n_window`` slots shared by the layers: the first ``n_init`` frames of the episode (attention sinks)
stay, the rest is a ring buffer holding the last ``n_window`` frames (paper: 8 + 48). Eviction is masking: an
empty or overwritten slot is simply not readable, so every step attends over tensors of the same size and
the state is constant in size from the first step. An episode start empties both caches of that row.

**Instructions.** The generic ``forward(x, state, episode_starts)`` works without any instruction (the
default ``instruction_size=0`` builds no instruction input). Build with ``instruction_size=E`` to read
instruction embeddings ``[B, L, E]`` (``L <= max_instruction_tokens``; rows without one, or padding tokens
marked False in the mask, are simply not attended). The caller either stores them in the state with
:meth:`JanusMemory.set_instruction` (per row, e.g. when one env of a vector env resets) or passes
``instruction=`` to ``forward`` (``[B, L, E]`` for the whole chunk or ``[B, T, L, E]`` per step) with an
optional boolean ``instruction_mask``. The
instruction is an *input*, not memory: an episode start does not clear it; set the new episode's
instruction at the same time.

**Frozen encoders.** Both encoders (tokenisers included) have ``requires_grad=False`` and stay in eval mode;
they are ordinary differentiable modules, so gradients still reach ``x`` (and an upstream encoder) through
them. Pretrain them standalone (e.g. :meth:`SpatialEncoder.forward_full` on a relative-pose or depth proxy)
and load their weights; the policy core and the fusion MLP are what trains here.

Oracles (``specs/janus.md``) are checked against :meth:`JanusMemory.reference_forward`, a full-sequence pass
with a frame-causal mask optionally restricted to the retained frames.

Layout: :mod:`.config` (:class:`JanusConfig`), :mod:`.layers` (attention, masks, blocks), :mod:`.encoders` (the two
frozen encoders), :mod:`.policy_core` (:class:`PolicyCore`), :mod:`.model` (:class:`JanusModel`: what the cached
memory and the baseline share), :mod:`.memory` (:class:`JanusMemory`) and :mod:`.reencode`
(:class:`JanusReencodeMemory`). Benchmark helpers (``synthetic_state``, ``make_step_fn``) are in
:mod:`chronotope.scripts.bench.janus`.
"""

from chronotope.memory.base import state_nbytes
from chronotope.memory.janus.config import JanusConfig
from chronotope.memory.janus.encoders import SemanticEncoder, SpatialEncoder
from chronotope.memory.janus.layers import retained_frames, retention_mask
from chronotope.memory.janus.memory import JanusMemory
from chronotope.memory.janus.model import JanusModel
from chronotope.memory.janus.policy_core import PolicyCore
from chronotope.memory.janus.reencode import JanusReencodeMemory

__all__ = [
    "JanusConfig",
    "JanusMemory",
    "JanusModel",
    "JanusReencodeMemory",
    "PolicyCore",
    "SemanticEncoder",
    "SpatialEncoder",
    "retention_mask",
    "retained_frames",
    "state_nbytes",
]
