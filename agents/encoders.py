"""Observation encoders chosen from a Gymnasium observation space (Box, Discrete, Dict of those).

Images (Box of rank 3, channel-last [H, W, C] with C <= 4, or channel-first) get a small CNN; egocentric map crops
(:class:`chronotope.maps.spaces.EgocentricMapBox`, e.g. the ``occupancy`` key of the map wrappers) a cheaper
pooled CNN (:class:`MapEncoder`); float vectors an
MLP with bounds-aware scaling; integer sequences (instruction tokens) an embedding + GRU; Discrete a one-hot;
categorical grids (MultiDiscrete of rank 3, [H, W, C]: MiniGrid's symbolic view, see
:class:`chronotope.agents.envs.MiniGridSymbolicGrid`) an embedding of every channel's index + a small CNN.
All encoders of a Dict are concatenated into one feature vector. A space none of these reads (text, Tuple,
nested Dict, ...) is refused with a ``ValueError`` naming its key.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from chronotope.agents.config import parse_glimpse
from chronotope.maps.spaces import EgocentricMapBox


def _is_image(space: spaces.Box) -> bool:
    return len(space.shape) == 3 and (space.shape[-1] <= 4 or space.shape[0] <= 4) and min(space.shape) >= 1


IMAGE_ARCHS = ("nature", "small", "pool", "keypoints")
"""CNNs of :class:`ImageEncoder` (``TrainConfig.image_encoder``)."""


class SpatialSoftmax(nn.Module):
    """Feature maps [B, K, H, W] -> the expected image position of each map's softmax, [B, 2K] = (x_1, y_1, ...) in
    [-1, 1] (x right, y down): the keypoint layer of deep spatial autoencoders (Finn et al., ICRA 2016; robomimic's
    image encoders end in it). A learned temperature (one, initialised to 1) sharpens or widens every softmax. Where
    a thing is becomes two numbers that a linear layer reads, which a flattened feature map spreads over many."""

    def __init__(self, height: int, width: int) -> None:
        super().__init__()
        ys, xs = torch.meshgrid(torch.linspace(-1.0, 1.0, height), torch.linspace(-1.0, 1.0, width), indexing="ij")
        self.register_buffer("pos", torch.stack([xs.reshape(-1), ys.reshape(-1)], 1), persistent=False)  # [HW, 2]
        self.log_temperature = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, k = x.shape[:2]
        attn = torch.softmax(x.reshape(b, k, -1) / self.log_temperature.exp(), dim=-1)  # [B, K, HW]
        return (attn @ self.pos).reshape(b, 2 * k)


class ImageEncoder(nn.Module):
    """CNN for [H, W, C] (or [C, H, W]) images; uint8 scaled to [0, 1], floats scaled by each channel's bound
    (a map whose channels have different ranges, e.g. occupancy in [0, 1] next to semantic ids, reaches the CNN
    with every channel at unit scale)."""

    def __init__(
        self,
        space: spaces.Box,
        out_dim: int = 128,
        arch: str = "nature",
        channel_last: bool | None = None,
        id_parts: dict[int, int] | None = None,
        id_dim: int = 4,
    ) -> None:
        super().__init__()
        if arch not in IMAGE_ARCHS:
            raise ValueError(f"unknown image encoder {arch!r}: use one of {IMAGE_ARCHS}")
        # None: inferred (<= 4 trailing channels); a fused stack of images says so, whatever its channel count
        self.channel_last = space.shape[-1] <= 4 if channel_last is None else bool(channel_last)
        c = space.shape[-1] if self.channel_last else space.shape[0]
        h, w = (space.shape[0], space.shape[1]) if self.channel_last else (space.shape[1], space.shape[2])
        # id_parts {part index: number of ids}: one-channel parts of integer ids (segmentation), each read through a
        # learned embedding of id_dim channels instead of as an intensity (see ObservationEncoder's id_embed)
        if id_parts and not self.channel_last:
            raise ValueError("id_parts needs channel-last images")
        self.id_embed = nn.ModuleDict({str(i): nn.Embedding(int(n), id_dim) for i, n in (id_parts or {}).items()})
        high = np.broadcast_to(np.asarray(space.high, np.float64), space.shape)
        per_channel = high.reshape(-1, c).max(0) if self.channel_last else high.reshape(c, -1).max(1)  # [C]
        if space.dtype == np.uint8:
            scale = np.full(c, 255.0)
        elif np.isfinite(per_channel).all():
            scale = np.where(per_channel > 0, per_channel, 1.0)
        else:
            scale = np.ones(c)
        # not persistent: derived from the space, and checkpoints stay loadable by either version
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32), persistent=False)
        self.in_channels = c + len(self.id_embed) * (id_dim - 1)  # what the CNN reads
        c = self.in_channels
        if arch == "pool":  # no convolution: each channel averaged over an 8 x 8 grid (the coarse layout only)
            convs = [nn.AdaptiveAvgPool2d((min(h, 8), min(w, 8)))]
        elif arch == "keypoints":  # 4 x 4 patches, then 16 keypoints (x, y) by a spatial softmax
            s4 = 4 if min(h, w) >= 32 else 2
            convs = [nn.Conv2d(c, 32, s4, s4), nn.ReLU(), nn.Conv2d(32, 16, 3, 1, 1)]
        elif min(h, w) >= 36 and arch == "nature":  # the DQN (Nature 2015) CNN
            convs = [nn.Conv2d(c, 32, 8, 4), nn.ReLU(), nn.Conv2d(32, 64, 4, 2), nn.ReLU(), nn.Conv2d(64, 64, 3, 1)]
        elif min(h, w) >= 36:  # "small": the DQN (NeurIPS 2013 workshop) CNN, ~1/3 of the Nature CNN's cost here
            convs = [nn.Conv2d(c, 16, 8, 4), nn.ReLU(), nn.Conv2d(16, 32, 4, 2)]
        elif arch == "nature":
            convs = [nn.Conv2d(c, 32, 3, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU()]
        else:
            convs = [nn.Conv2d(c, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1)]
        if arch == "keypoints":
            self.cnn = nn.Sequential(*convs, SpatialSoftmax(h // s4, w // s4))
        else:
            self.cnn = nn.Sequential(*convs, nn.ReLU(), nn.Flatten())
        self.input_shape = (c, h, w)
        with torch.no_grad():
            n = self.cnn(torch.zeros(1, c, h, w)).shape[1]
        self.fc = nn.Sequential(nn.Linear(n, out_dim), nn.ReLU())
        self.out_dim = out_dim

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """The CNN's input [B, C, H, W], every channel scaled, from x [B, H, W, C] (or [B, C, H, W])."""
        if len(self.id_embed):
            return self.prepare_parts([x])
        if self.channel_last:
            return (x.float() / self.scale).permute(0, 3, 1, 2)
        return x.float() / self.scale[:, None, None]

    def prepare_parts(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """:meth:`prepare` of channel-last images [B, H, W, C_i] stacked along their channels, each scaled straight
        into one contiguous channel-first float buffer [B, C, H, W] (a cat and a division over the stacked batch cost
        as much as the first convolution; writing channel-first slices took 0.6x the time of channel-last ones for a
        1,024-sample rgb + depth + segmentation batch, and the convolution reads its input no slower). An id part
        (``id_parts``) becomes its embedding's channels."""
        b, h, w = parts[0].shape[:3]
        x = torch.empty(b, self.in_channels, h, w, device=parts[0].device)
        inv = 1.0 / self.scale
        c = o = 0  # input channel, CNN channel
        embedded = []
        for i, p in enumerate(parts):
            n = p.shape[-1]
            if str(i) in self.id_embed:
                embedded.append((o, self.id_embed[str(i)], p))
                o += self.id_embed[str(i)].embedding_dim
            else:
                torch.mul(p.permute(0, 3, 1, 2), inv[c : c + n, None, None], out=x[:, o : o + n])
                o += n
            c += n
        for o, emb, p in embedded:  # after the scaled parts: ``out=`` cannot write into a buffer that needs grad
            ids = p[..., 0].long().clamp(0, emb.num_embeddings - 1)
            x[:, o : o + emb.embedding_dim] = emb(ids).permute(0, 3, 1, 2)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [B, H, W, C] (or [B, C, H, W]) -> [B, out_dim]
        return self.fc(self.cnn(self.prepare(x)))

    def forward_parts(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """``forward`` of channel-last images [B, H, W, C_i] stacked along their channels."""
        return self.fc(self.cnn(self.prepare_parts(parts)))


class MapEncoder(nn.Module):
    """CNN for egocentric map crops ``[C, S, S]`` (channel-first, heading up), chosen by the space's type
    (:class:`chronotope.maps.spaces.EgocentricMapBox`); camera images keep :class:`ImageEncoder`.

    The crop is average-pooled to about 16 x 16 (``pool = max(1, S // 16)``: 4 x 4 cells of the default 64 x 64
    crop of 5 cm cells, so 20 cm per pooled cell, each channel the fraction of occupied / free cells and the mean
    semantic id there), scaled by each channel's bound as :class:`ImageEncoder` scales, then two 3 x 3 stride-2
    convolutions (16 and 32 channels) and a linear layer. Why not the camera CNN: on the 3 x 64 x 64 crop of
    ``--wrappers occupancy`` the Nature-CNN branch of :class:`ImageEncoder` cost 270 ms per forward + backward of a
    512-sample PPO minibatch and 2.6 ms per 16-env acting step on one CPU thread (4.6 s per 16 x 128-step update
    of 4 epochs x 4 minibatches, more than the depth camera's own CNN at 3.6 s); this encoder costs 28-37 ms and
    0.7-1.1 ms (0.6-0.7 s per update), measured in one run on a shared 2-core machine. Pooling at 2 x 2 with a
    third convolution cost 2.3 s per update, max-pooling at 4 x 4 1.0 s.
    """

    def __init__(self, space: spaces.Box, out_dim: int = 128, pool: int | None = None) -> None:
        super().__init__()
        if len(space.shape) != 3:
            raise ValueError(f"MapEncoder reads channel-first crops [C, H, W], got shape {space.shape}")
        c, h, w = space.shape
        self.pool = int(pool) if pool is not None else max(1, min(h, w) // 16)
        high = np.broadcast_to(np.asarray(space.high, np.float64), space.shape).reshape(c, -1).max(1)  # [C]
        scale = np.where(np.isfinite(high) & (high > 0), high, 1.0)
        # not persistent: derived from the space
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32), persistent=False)
        self.cnn = nn.Sequential(
            nn.Conv2d(c, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(), nn.Flatten()
        )  # fmt: skip
        with torch.no_grad():
            n = self.cnn(self._pooled(torch.zeros(1, c, h, w))).shape[1]
        self.fc = nn.Sequential(nn.Linear(n, out_dim), nn.ReLU())
        self.out_dim = out_dim

    def _pooled(self, x: torch.Tensor) -> torch.Tensor:
        # pool first, then scale: the same values as scaling first, on 1 / pool^2 of the elements
        return nn.functional.avg_pool2d(x.float(), self.pool, ceil_mode=True) / self.scale[:, None, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [B, C, H, W] -> [B, out_dim]
        return self.fc(self.cnn(self._pooled(x)))

    def from_pooled(self, pooled: torch.Tensor) -> torch.Tensor:
        """``forward`` from the scaled, pooled crop [B, C, S', S'] (``_pooled(x)``, which has no parameters:
        :meth:`ObservationEncoder.derive` computes it once per frame)."""
        return self.fc(self.cnn(pooled))


SCALES = ("bounds", "magnitude")
"""How :class:`VectorEncoder` scales finite bounds (``TrainConfig.obs_scale``)."""


def _finite_bounds(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The entries of a Box with finite, increasing bounds (the ones its bounds scale)."""
    return np.isfinite(lo) & np.isfinite(hi) & (hi > lo)


def box_scaling(lo: np.ndarray, hi: np.ndarray, scale: str = "bounds") -> tuple[np.ndarray, np.ndarray]:
    """Element-wise (center, half) with which ``(x - center) / half`` scales a Box with bounds ``lo`` / ``hi``:
    "bounds" maps [low, high] to [-1, 1]; "magnitude" divides by max(|low|, |high|) (0 stays 0). Elements without
    finite, increasing bounds get (0, 1): unscaled."""
    if scale not in SCALES:
        raise ValueError(f"unknown observation scale {scale!r}: use one of {SCALES}")
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    finite = _finite_bounds(lo, hi)
    center, half = np.zeros_like(lo), np.ones_like(lo)
    if scale == "bounds":
        center[finite] = (hi[finite] + lo[finite]) / 2
        half[finite] = (hi[finite] - lo[finite]) / 2
    else:
        half[finite] = np.maximum(np.abs(lo[finite]), np.abs(hi[finite]))
    return center, half


class UnboundedScaling(nn.Module):
    """Running scaling of the entries whose Box bounds are infinite (``TrainConfig.obs_norm``): the owning encoder's
    ``center`` and ``halfwidth`` at those entries become the running mean and standard deviation of what it has been
    shown (:meth:`moments`, then :meth:`merge`, which the trainer calls after each update with that update's
    rollout), as SB3's ``VecNormalize`` and Gymnasium's ``NormalizeObservation`` scale observations, but only where
    the space gives no scale (bounded entries keep their bounds' map). The statistics are buffers, so a checkpoint
    carries them and evaluation scales as training last did. Before any data: no scaling (0, 1).

    ``free``: the entries to scale ([*shape] of the owner's ``center``); ``pool``: how many leading dims of that
    shape are interchangeable rows whose columns share one statistic (an entity set's rows: 1)."""

    def __init__(self, free: np.ndarray, pool: int = 0) -> None:
        super().__init__()
        self.register_buffer("free", torch.as_tensor(free, dtype=torch.bool))
        stat_shape = tuple(free.shape[pool:])
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("mean", torch.zeros(stat_shape, dtype=torch.float64))
        self.register_buffer("m2", torch.zeros(stat_shape, dtype=torch.float64))

    def moments(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(n, sum, sum of squares) of ``x`` [..., *shape] over every leading dim and the pooled rows (float64)."""
        x = x.reshape(-1, *self.mean.shape).double()
        return [torch.tensor(float(x.shape[0]), dtype=torch.float64, device=x.device), x.sum(0), (x * x).sum(0)]

    @torch.no_grad()
    def merge(self, moments: list[torch.Tensor], center: torch.Tensor, halfwidth: torch.Tensor) -> None:
        """Folds a batch's moments into the running statistics (Chan et al.'s parallel update) and writes the new
        scaling of the free entries into the owner's ``center`` / ``halfwidth``."""
        n, s1, s2 = moments
        if float(n) <= 0:
            return
        mean_b = s1 / n
        m2_b = (s2 - n * mean_b * mean_b).clamp_min(0.0)
        total = self.count + n
        delta = mean_b - self.mean
        self.mean += delta * n / total
        self.m2 += m2_b + delta * delta * self.count * n / total
        self.count.copy_(total)
        std = (self.m2 / self.count).sqrt().clamp_min(1e-2).float().expand(center.shape)
        center.copy_(torch.where(self.free, self.mean.float().expand(center.shape), center))
        halfwidth.copy_(torch.where(self.free, std, halfwidth))


def _scaling(space_or_boxes, scale: str, normalize: bool, pool: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(center, half, free) of one Box (or of row-aligned [K, F_i] Boxes side by side): ``free`` marks the entries
    without finite bounds, which :class:`UnboundedScaling` scales from data when ``normalize``."""
    boxes = space_or_boxes if isinstance(space_or_boxes, list) else [space_or_boxes]
    parts = []
    for box in boxes:
        lo, hi = np.asarray(box.low, np.float64), np.asarray(box.high, np.float64)
        c, h = box_scaling(lo, hi, scale)
        parts.append((c, h, ~_finite_bounds(lo, hi) & normalize))
    axis = -1 if pool else 0
    if not pool:
        parts = [(c.reshape(-1), h.reshape(-1), f.reshape(-1)) for c, h, f in parts]
    return tuple(np.concatenate([p[i] for p in parts], axis) for i in range(3))


class _ScaledInput(nn.Module):
    """Base of the encoders that scale their input entries by ``(x - center) / halfwidth`` (buffers, from the
    space's bounds; with ``normalize`` the unbounded entries from running statistics, :class:`UnboundedScaling`,
    which the trainer feeds through ``moments`` and :meth:`merge`)."""

    def _init_scaling(self, center: np.ndarray, half: np.ndarray, free: np.ndarray, pool: int = 0) -> None:
        self.register_buffer("center", torch.as_tensor(center, dtype=torch.float32))
        self.register_buffer("halfwidth", torch.as_tensor(half, dtype=torch.float32))
        self.norm = UnboundedScaling(free, pool=pool) if free.any() else None

    def merge(self, moments: list[torch.Tensor]) -> None:
        self.norm.merge(moments, self.center, self.halfwidth)

    def scaled(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.center) / self.halfwidth


class VectorEncoder(_ScaledInput):
    """MLP for float Boxes; finite bounds map to [-1, 1]."""

    def __init__(self, space: spaces.Box, out_dim: int = 64, scale: str = "bounds", normalize: bool = False) -> None:
        super().__init__()
        # infinite bounds (map features) stay unscaled, or take running statistics with ``normalize``
        center, half, free = _scaling(space, scale, normalize)
        self._init_scaling(center, half, free)
        self.net = nn.Sequential(nn.Linear(center.size, out_dim), nn.ReLU())
        self.out_dim = out_dim

    def moments(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.norm.moments(x.reshape(-1, self.center.shape[0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [B, ...] -> [B, out_dim]
        return self.net(self.scaled(x.reshape(x.shape[0], -1).float()))


class TokenEncoder(nn.Module):
    """Embedding + GRU over integer token ids [B, L] (0 = padding); returns the last non-pad state."""

    def __init__(self, space: spaces.Box, out_dim: int = 64, embed: int = 32) -> None:
        super().__init__()
        vocab = int(np.asarray(space.high).max()) + 1
        self.embed = nn.Embedding(vocab, embed, padding_idx=0)
        self.gru = nn.GRU(embed, out_dim, batch_first=True)
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [B, L] -> [B, out_dim]
        x = x.long()
        lengths = (x != 0).sum(1).clamp(min=1)
        out, _ = self.gru(self.embed(x))
        return out[torch.arange(x.shape[0], device=x.device), lengths - 1]


class DiscreteEncoder(nn.Module):
    def __init__(self, space: spaces.Discrete) -> None:
        super().__init__()
        self.n = int(space.n)
        self.start = int(space.start)
        self.out_dim = self.n

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [B] -> [B, n]
        return nn.functional.one_hot((x.reshape(-1).long() - self.start).clamp(0, self.n - 1), self.n).float()


class CategoricalGridEncoder(nn.Module):
    """Embedding + CNN for a grid of categorical indices: MultiDiscrete ``nvec`` of shape [H, W, C] (channel-last).

    Channel ``c`` takes ``max(nvec[..., c])`` values; each cell's C indices are embedded (one table, offset per
    channel, ``embed`` dims each; an index out of range is clamped) and concatenated to ``C * embed`` feature maps,
    then two 3x3 convolutions (16 and 32 channels, the second with stride 2; a third for grids over 8 cells wide)
    and a linear layer. Index 0 is an ordinary value (MiniGrid: "unseen"), not padding. Small on purpose: on one
    CPU thread a 32/64-channel stack costs 2.5x the time per PPO minibatch (measured on 7x7 MiniGrid views) and
    the symbolic view needs little.
    """

    def __init__(self, space: spaces.MultiDiscrete, out_dim: int = 128, embed: int = 8) -> None:
        super().__init__()
        h, w, c = space.nvec.shape
        n = np.asarray(space.nvec, np.int64).reshape(-1, c).max(0)  # [C] values per channel
        self.register_buffer("offset", torch.as_tensor(np.concatenate([[0], np.cumsum(n)[:-1]]), dtype=torch.long))
        self.register_buffer("high", torch.as_tensor(n - 1, dtype=torch.long))
        self.embed = nn.Embedding(int(n.sum()), embed)
        convs = [nn.Conv2d(c * embed, 16, 3, 1, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU()]
        if min(h, w) > 8:
            convs += [nn.Conv2d(32, 32, 3, 2, 1), nn.ReLU()]
        self.cnn = nn.Sequential(*convs, nn.Flatten())
        with torch.no_grad():
            n_flat = self.cnn(torch.zeros(1, c * embed, h, w)).shape[1]
        self.fc = nn.Sequential(nn.Linear(n_flat, out_dim), nn.ReLU())
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [B, H, W, C] integer -> [B, out_dim]
        b, h, w, _ = x.shape
        idx = torch.minimum(x.long().clamp(min=0), self.high) + self.offset  # [B, H, W, C]
        e = self.embed(idx).reshape(b, h, w, -1).permute(0, 3, 1, 2)  # [B, C * embed, H, W]
        return self.fc(self.cnn(e))


def _is_categorical_grid(space: spaces.MultiDiscrete) -> bool:
    return len(space.shape) == 3 and space.shape[-1] <= 4


def encoder_for(
    space: spaces.Space,
    image_dim: int = 128,
    vector_dim: int = 64,
    scale: str = "bounds",
    image_arch: str = "nature",
    normalize: bool = False,
) -> nn.Module:
    """The encoder of one observation space; ``ValueError`` for a space none of them reads. ``scale``: how float
    vectors are scaled (:data:`SCALES`; see :class:`VectorEncoder`); ``image_arch``: the CNN of images
    (:data:`IMAGE_ARCHS`); ``normalize``: float vectors scale their unbounded entries by running statistics
    (:class:`UnboundedScaling`)."""
    if isinstance(space, spaces.Discrete):
        return DiscreteEncoder(space)
    if isinstance(space, spaces.MultiBinary):
        return VectorEncoder(spaces.Box(0.0, 1.0, (int(np.prod(space.shape)),), np.float32), vector_dim, scale)
    if isinstance(space, spaces.MultiDiscrete):
        if _is_categorical_grid(space):
            return CategoricalGridEncoder(space, image_dim)
        return VectorEncoder(
            spaces.Box(0.0, np.asarray(space.nvec, np.float32) - 1, dtype=np.float32), vector_dim, scale
        )
    if isinstance(space, spaces.Box):
        if isinstance(space, EgocentricMapBox):
            return MapEncoder(space, image_dim)
        if _is_image(space):
            return ImageEncoder(space, image_dim, image_arch)
        if np.issubdtype(space.dtype, np.integer) and len(space.shape) == 1 and space.shape[0] > 4:
            return TokenEncoder(space, vector_dim)
        return VectorEncoder(space, vector_dim, scale, normalize)
    hint = ""
    dtype = getattr(space, "dtype", None)
    if isinstance(space, spaces.Text) or (dtype is not None and np.dtype(dtype).kind in "US"):
        hint = (
            "; text is not encoded: chronotope.agents.envs.make_vector_env drops the text entries of a Dict "
            "observation (DropTextObservations)"
        )
    raise ValueError(
        f"unsupported observation space {space!r}: use Box, Discrete, MultiBinary, MultiDiscrete or a Dict of "
        f"those{hint}"
    )


class RowVisionEncoder(nn.Module):
    """A camera CNN whose feature map each entity row attends over: object-centric perception for rows that say
    where objects are (e.g. ObjectRecall's ``candidates`` in a pixel mode, whose cue shows only in the image).

    Row k's query (an MLP of its scaled values) attends over the cells of the CNN's last feature map, each cell's
    key and value a linear map of its features and its (u, v) position in [-1, 1]; the attended value (``value_dim``)
    joins the row, and the rows go through the vector MLP as a plain Box would. So what the image shows at an
    object (a tint, a colour) becomes a column of that object's row, which a memory can keep per row as it keeps a
    state-mode column, instead of having to learn which row a blob of the whole image belongs to. The CNN's global
    feature (``image.fc``) is kept beside the rows. Output: [image.out_dim + out_dim].

    ``glimpse`` = (x column, y column, horizontal field of view in degrees): the rows hold their object's position in
    the camera's frame (x forward, y left, e.g. ObjectRecall's ``candidates`` columns 1 and 2), and instead of
    attending, row k reads the image itself where its object projects: the full-height pixel column at image
    coordinate u = -(y / x) / tan(hfov / 2) (bilinear between the two nearest columns; zeros when the object is
    behind the camera or outside the view), every channel (e.g. rgb and depth, so also whether something nearer
    hides the object), through a small MLP shared by the rows. A pinhole projection with the camera's known field of
    view: what is left to learn is what the pixels there show (the cue's colour), not where an object appears.
    """

    def __init__(
        self,
        image: ImageEncoder,
        rows: spaces.Box,
        out_dim: int = 64,
        scale: str = "bounds",
        dim: int = 32,
        value_dim: int = 8,
        glimpse: tuple[int, int, float] | None = None,
    ) -> None:
        super().__init__()
        if len(rows.shape) != 2:
            raise ValueError(f"row vision needs rows [K, F], got a space of shape {rows.shape}")
        self.image = image
        k, f = rows.shape
        self.glimpse = None
        if glimpse is not None:
            xi, yi, hfov = parse_glimpse(glimpse, f)
            self.glimpse = (xi, yi, math.tan(math.radians(hfov) / 2))
            c, h = image.input_shape[0], image.input_shape[1]
            self.look = nn.Sequential(nn.Linear(c * h, dim), nn.ReLU(), nn.Linear(dim, value_dim))
        center, half = box_scaling(rows.low, rows.high, scale)
        self.register_buffer("center", torch.as_tensor(center, dtype=torch.float32), persistent=False)
        self.register_buffer("halfwidth", torch.as_tensor(half, dtype=torch.float32), persistent=False)
        with torch.no_grad():
            c, h, w = image.cnn[:-1](torch.zeros(1, *image.input_shape)).shape[1:]
        v, u = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
        self.register_buffer("cell_pos", torch.stack([u, v], -1).reshape(h * w, 2), persistent=False)
        self.query = nn.Sequential(nn.Linear(f, dim), nn.ReLU(), nn.Linear(dim, dim))
        self.key = nn.Linear(c + 2, dim)
        self.value = nn.Linear(c + 2, value_dim)
        self.rows = nn.Sequential(nn.Linear(k * (f + value_dim), out_dim), nn.ReLU())
        self.out_dim = image.out_dim + out_dim

    @property
    def derivable(self) -> bool:
        """Whether everything before the learned layers is parameter-free (``glimpse`` over the "pool" image
        encoder), so that :meth:`ObservationEncoder.derive` may compute it once per frame."""
        return self.glimpse is not None and not any(p.requires_grad for p in self.image.cnn.parameters())

    def from_columns(self, pooled: torch.Tensor, cols: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """The ``glimpse`` output from the image encoder's flattened feature map [B, D] and :meth:`look_at_rows`'
        columns [B, K, C * H]."""
        r = (rows.float() - self.center) / self.halfwidth
        seen = self.look(cols)  # [B, K, value_dim]
        return torch.cat([self.image.fc(pooled), self.rows(torch.cat([r, seen], -1).flatten(1))], -1)

    def look_at_rows(self, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """The pixel column where each row's object projects, [B, K, C * H] (``glimpse``; zeros out of view)."""
        xi, yi, tan_half = self.glimpse
        fwd, left = rows[..., xi].float(), rows[..., yi].float()  # [B, K]
        ok = fwd > 1e-3
        u = -left / torch.where(ok, fwd, 1.0) / tan_half
        ok &= u.abs() <= 1
        b, c, h, _ = x.shape
        k = rows.shape[1]
        v = (torch.arange(h, device=x.device, dtype=x.dtype) + 0.5) * (2.0 / h) - 1.0  # pixel-row centres
        grid = torch.stack([torch.where(ok, u, 0.0)[..., None].expand(b, k, h), v.expand(b, k, h)], -1)
        cols = nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        cols = cols.permute(0, 2, 1, 3).reshape(b, k, c * h)  # [B, K, C * H]
        return cols * ok[..., None]

    def forward(self, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """x: the CNN's prepared input [B, C, H, W] (:meth:`ImageEncoder.prepare`); rows [B, K, F]."""
        fmap = self.image.cnn[:-1](x)  # [B, C', h, w] (after its ReLU)
        if self.glimpse is not None:
            return self.from_columns(fmap.flatten(1), self.look_at_rows(x, rows), rows)
        glob = self.image.fc(fmap.flatten(1))
        cells = fmap.flatten(2).transpose(1, 2)  # [B, h * w, C']
        cells = torch.cat([cells, self.cell_pos.expand(cells.shape[0], -1, -1)], -1)
        r = (rows.float() - self.center) / self.halfwidth  # [B, K, F]
        q = self.query(r)  # [B, K, dim]
        att = torch.softmax(q @ self.key(cells).transpose(1, 2) / math.sqrt(q.shape[-1]), -1)  # [B, K, h * w]
        seen = att @ self.value(cells)  # [B, K, value_dim]
        return torch.cat([glob, self.rows(torch.cat([r, seen], -1).flatten(1))], -1)


class EntityEncoder(_ScaledInput):
    """A set of entities given as row-aligned keys (row k of every key describes entity k, e.g. ``object_pose``
    [K, 7] with ``cue`` [K, C]): the rows' columns side by side [K, sum F], each scaled as :class:`VectorEncoder`
    scales it, go through one MLP shared by the rows, and the rows' outputs are summed (Deep Sets, Zaheer et al.
    2017) -> [out_dim].

    The sum does not depend on the rows' order, and one MLP per row can form products of a row's own columns
    (which colour a pad shows times where it is) that a flat MLP over every key apart must find across keys: on
    PairRecall, whose rows are re-ordered when the cue goes off, the pairs became learnable with it
    (docs/RESULTS.md 6)."""

    def __init__(
        self,
        subspaces: list[spaces.Box],
        out_dim: int = 64,
        hidden: int = 64,
        scale: str = "bounds",
        normalize: bool = False,
    ):
        super().__init__()
        center, half, free = _scaling(subspaces, scale, normalize, pool=1)
        self._init_scaling(center, half, free, pool=1)  # one statistic per column, over the rows
        width = int(center.shape[1])
        self.net = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, out_dim), nn.ReLU())
        self.out_dim = out_dim

    def join(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """The keys' rows side by side [..., K, sum F]."""
        return torch.cat([p.float() for p in parts], -1)

    def moments(self, parts: list[torch.Tensor]) -> list[torch.Tensor]:
        return self.norm.moments(self.join(parts))

    def forward(self, parts: list[torch.Tensor]) -> torch.Tensor:  # parts [B, K, F_i] -> [B, out_dim]
        return self.net(self.scaled(self.join(parts))).sum(-2)


def _fusable(space: spaces.Space) -> bool:
    """A channel-last image that :class:`ObservationEncoder` may stack with others of its size."""
    return (
        isinstance(space, spaces.Box)
        and not isinstance(space, EgocentricMapBox)
        and _is_image(space)
        and space.shape[-1] <= 4
        and np.isfinite(np.asarray(space.high, np.float64)).all()
    )


def _is_id_image(space: spaces.Space) -> bool:
    """A one-channel channel-last image of integer ids (a segmentation: body / instance ids), not uint8 colour."""
    return (
        _fusable(space)
        and space.shape[-1] == 1
        and np.issubdtype(space.dtype, np.integer)
        and space.dtype != np.uint8
        and np.isfinite(np.asarray(space.high, np.float64)).all()
    )


def _num_ids(space: spaces.Box) -> int:
    """Ids 0..max(high) of an id image (:func:`_is_id_image`); larger ids are clamped to the last."""
    return int(np.max(space.high)) + 1


def fused_image_space(subspaces: list[spaces.Box]) -> spaces.Box:
    """The [H, W, sum C] float Box of channel-last images of one size stacked along their channels (each channel
    keeps its own bounds, so :class:`ImageEncoder` scales each as it would alone)."""
    low = np.concatenate([np.broadcast_to(np.asarray(s.low, np.float32), s.shape) for s in subspaces], -1)
    high = np.concatenate([np.broadcast_to(np.asarray(s.high, np.float32), s.shape) for s in subspaces], -1)
    return spaces.Box(low, high, dtype=np.float32)


class ObservationEncoder(nn.Module):
    """Encodes a (Dict) observation batch into features [B, out_dim].

    ``fuse_images``: channel-last images of equal size (e.g. ``rgb`` [H, W, 3] and ``depth`` [H, W, 1]) go through
    one CNN over their stacked channels (here [H, W, 4]) instead of one CNN each, the usual RGB-D encoder; its
    module is named by the keys joined with ``+``. ``image_arch``: the CNN (:data:`IMAGE_ARCHS`). ``row_vision``: a
    [K, F] rows key encoded with the (one, or one fused) camera image by :class:`RowVisionEncoder`, the module named
    ``<image>+<rows>``. ``entity_keys``: row-aligned [K, F] keys encoded together as a set by
    :class:`EntityEncoder`, the module named ``entities:<keys joined with +>``. ``id_embed`` > 0: one-channel integer
    images (segmentations of body or instance ids, not uint8 colour) enter their CNN through a learned embedding of
    that many channels per id instead of as one intensity channel scaled by the largest id, so that two ids are as
    far apart as the network makes them, not as their numbers (ids are categories).
    """

    def __init__(
        self,
        space: spaces.Space,
        image_dim: int = 128,
        vector_dim: int = 64,
        scale: str = "bounds",
        image_arch: str = "nature",
        fuse_images: bool = False,
        row_vision: str | None = None,
        row_glimpse: tuple[int, int, float] | None = None,
        entity_keys: tuple[str, ...] = (),
        normalize: bool = False,
        id_embed: int = 0,
    ) -> None:
        super().__init__()
        self.is_dict = isinstance(space, spaces.Dict)
        subspaces = dict(space.spaces) if self.is_dict else {"obs": space}
        self.entity_keys = tuple(entity_keys)
        if self.entity_keys:
            boxes = [subspaces.get(k) for k in self.entity_keys]
            shapes = {k: getattr(b, "shape", None) for k, b in zip(self.entity_keys, boxes)}
            ok = all(isinstance(b, spaces.Box) and len(b.shape) == 2 for b in boxes)
            if not ok or len({sh[0] for sh in shapes.values()}) != 1:
                raise ValueError(
                    f"entity_keys {list(self.entity_keys)} must name [K, F] Box keys of the observation with one K "
                    f"(got shapes {shapes}; keys {sorted(subspaces)})"
                )
        groups: dict[tuple[int, int], list[str]] = {}
        if fuse_images:
            for k in sorted(subspaces):
                if _fusable(subspaces[k]):
                    groups.setdefault(subspaces[k].shape[:2], []).append(k)
        self.fused = {"+".join(ks): ks for ks in groups.values() if len(ks) > 1}
        fused_keys = {k for ks in self.fused.values() for k in ks}
        encoders = {}
        for name, ks in self.fused.items():
            fused = fused_image_space([subspaces[k] for k in ks])
            ids = {i: _num_ids(subspaces[k]) for i, k in enumerate(ks) if id_embed and _is_id_image(subspaces[k])}
            encoders[name] = ImageEncoder(
                fused, image_dim, image_arch, channel_last=True, id_parts=ids, id_dim=id_embed
            )
        if self.entity_keys:
            boxes = [subspaces[k] for k in self.entity_keys]
            name = "entities:" + "+".join(self.entity_keys)
            encoders[name] = EntityEncoder(boxes, vector_dim, scale=scale, normalize=normalize)
        for k in sorted(subspaces):
            if k in fused_keys or k in self.entity_keys:
                continue
            try:
                if id_embed and _is_id_image(subspaces[k]):
                    encoders[k] = ImageEncoder(
                        subspaces[k], image_dim, image_arch, True, {0: _num_ids(subspaces[k])}, id_embed
                    )
                    continue
                encoders[k] = encoder_for(subspaces[k], image_dim, vector_dim, scale, image_arch, normalize)
            except ValueError as e:
                where = f"observation key {k!r}" if self.is_dict else "the observation"
                raise ValueError(f"cannot encode {where}: {e}") from e
        self.row_vision: tuple[str, str] | None = None  # (image encoder name, rows key)
        if row_vision is not None:
            images = [k for k, e in encoders.items() if type(e) is ImageEncoder]
            if row_vision not in encoders or len(images) != 1:
                raise ValueError(
                    f"row_vision {row_vision!r} needs that rows key and exactly one camera image (or one fused "
                    f"group: fuse_images) in the observation; keys {sorted(subspaces)}, images {images}"
                )
            name = f"{images[0]}+{row_vision}"
            encoders[name] = RowVisionEncoder(
                encoders.pop(images[0]), subspaces[row_vision], vector_dim, scale, glimpse=row_glimpse
            )
            del encoders[row_vision]
            self.row_vision = (images[0], row_vision)
        self.keys = sorted(encoders)
        self.encoders = nn.ModuleDict(encoders)
        self.out_dim = sum(e.out_dim for e in self.encoders.values())

    def forward(self, obs: dict[str, torch.Tensor] | torch.Tensor) -> torch.Tensor:
        if not self.is_dict:
            obs = {"obs": obs}
        out = []
        vision = None if self.row_vision is None else "+".join(self.row_vision)
        for k in self.keys:
            enc = self.encoders[k]
            if k == vision:
                image, rows = self.row_vision
                if DERIVED_COLUMNS in obs:  # what derive() computed from the images
                    out.append(enc.from_columns(obs[DERIVED_POOLED], obs[DERIVED_COLUMNS], obs[rows]))
                    continue
                out.append(enc(self._row_vision_input(obs), obs[rows]))
                continue
            if isinstance(enc, EntityEncoder):
                out.append(enc([obs[j] for j in self.entity_keys]))
                continue
            if isinstance(enc, MapEncoder) and DERIVED_MAP + k in obs:  # the pooled crop derive() computed
                out.append(enc.from_pooled(obs[DERIVED_MAP + k]))
                continue
            ks = self.fused.get(k)
            out.append(enc(obs[k]) if ks is None else enc.forward_parts([obs[j] for j in ks]))
        return torch.cat(out, dim=-1)

    def _normalized(self) -> list[tuple[str, nn.Module]]:
        return [(k, e) for k, e in self.encoders.items() if getattr(e, "norm", None) is not None]

    def _inputs(self, k: str, obs: dict[str, torch.Tensor]):
        return [obs[j] for j in self.entity_keys] if isinstance(self.encoders[k], EntityEncoder) else obs[k]

    def normalizer_moments(self, obs: dict[str, torch.Tensor] | torch.Tensor) -> list[torch.Tensor]:
        """The moments (n, sum, sum of squares) of a batch ``obs`` (leaves [..., *shape], any leading dims) for
        every encoder that scales unbounded entries by running statistics, flat in one list (the trainer sums them
        over ranks, then :meth:`merge_normalizer`); empty where none does."""
        obs = obs if self.is_dict else {"obs": obs}
        return [m for k, e in self._normalized() for m in e.moments(self._inputs(k, obs))]

    def merge_normalizer(self, moments: list[torch.Tensor]) -> None:
        """Folds :meth:`normalizer_moments`' output into the running statistics."""
        for i, (_, e) in enumerate(self._normalized()):
            e.merge(moments[3 * i : 3 * i + 3])

    def _row_vision_input(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The row-vision module's camera input, prepared [B, C, H, W], from its image key (or fused keys)."""
        image = self.row_vision[0]
        enc = self.encoders["+".join(self.row_vision)].image
        ks = self.fused.get(image)
        return enc.prepare(obs[image]) if ks is None else enc.prepare_parts([obs[j] for j in ks])

    @torch.no_grad()
    def derive(self, obs: dict[str, torch.Tensor], chunk: int = 1024) -> dict[str, torch.Tensor]:
        """``obs`` (leaves [..., *shape], any leading dims) with what needs no parameters computed once per frame,
        where the encoder has such a part: a row-vision module with ``glimpse`` over the "pool" image encoder
        (:attr:`RowVisionEncoder.derivable`) replaces its image keys by the pooled image ([..., D]) and the rows'
        pixel columns ([..., K, C * H]), which :meth:`forward` reads as it would have computed them. A PPO update
        reads every frame once per epoch; the images' scaling, pooling and sampling then run once instead (in
        ``chunk``-frame pieces). Likewise a map crop's :class:`MapEncoder` pooling and scaling: its key is replaced
        by ``DERIVED_MAP + key`` (the pooled crop [..., C, S', S'], a quarter of the pixels at the default pool,
        so the shuffled minibatch copies shrink too). Otherwise ``obs`` itself."""
        if not self.is_dict:
            return obs
        out = self._derive_row_vision(obs, chunk)
        maps = [k for k in self.keys if isinstance(self.encoders[k], MapEncoder) and k in obs]
        if not maps:
            return out
        out = dict(out)
        for k in maps:
            enc, x = self.encoders[k], out.pop(k)
            lead = x.shape[:-3]
            flat = x.reshape(int(np.prod(lead)), *x.shape[len(lead) :])
            pooled = torch.cat([enc._pooled(flat[s : s + chunk]) for s in range(0, max(1, flat.shape[0]), chunk)])
            out[DERIVED_MAP + k] = pooled.reshape(*lead, *pooled.shape[1:])
        return out

    def _derive_row_vision(self, obs: dict[str, torch.Tensor], chunk: int) -> dict[str, torch.Tensor]:
        """:meth:`derive`'s row-vision part (``obs`` itself where it has none)."""
        if self.row_vision is None:
            return obs
        enc = self.encoders["+".join(self.row_vision)]
        if not enc.derivable:
            return obs
        image, rows = self.row_vision
        ks = self.fused.get(image, [image])
        lead = obs[rows].shape[:-2]
        n = int(np.prod(lead))
        flat = {k: obs[k].reshape(n, *obs[k].shape[len(lead) :]) for k in (*ks, rows)}
        pooled, cols = [], []
        for s in range(0, n, chunk):
            part = {k: v[s : s + chunk] for k, v in flat.items()}
            x = self._row_vision_input(part)
            pooled.append(enc.image.cnn(x))
            cols.append(enc.look_at_rows(x, part[rows]))
        out = {k: v for k, v in obs.items() if k not in ks}
        out[DERIVED_POOLED] = torch.cat(pooled).reshape(*lead, -1)
        out[DERIVED_COLUMNS] = torch.cat(cols).reshape(*lead, *cols[0].shape[1:])
        return out


DERIVED_POOLED = "_derived_pooled_image"
DERIVED_COLUMNS = "_derived_row_columns"
"""Keys :meth:`ObservationEncoder.derive` puts in place of the images."""
DERIVED_MAP = "_derived_pooled_map:"
"""Prefix of the key :meth:`ObservationEncoder.derive` puts in place of a map crop's (``DERIVED_MAP + key``)."""


def init_linear(layer: nn.Linear, gain: float) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


SQRT2 = math.sqrt(2)
