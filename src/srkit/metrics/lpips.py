"""LPIPS perceptual distance (Zhang et al., CVPR 2018), version 0.1, from user-supplied weight files.

srkit never downloads weights. LPIPS needs two sets:

* the linear heads, ``lin0.model.1.weight`` ... ``lin4.model.1.weight`` (shape 1xCx1x1): the files the
  ``lpips`` package ships as ``weights/v0.1/alex.pth`` / ``vgg.pth``;
* the backbone, in torchvision layout (``features.N.weight`` / ``features.N.bias``), e.g. a saved
  ``torchvision.models.alexnet(weights="IMAGENET1K_V1").state_dict()`` or ``vgg16(...)`` (classifier
  keys are ignored) -> ``backbone_path``.

A whole ``lpips.LPIPS`` module state_dict (keys ``net.sliceK.N.*`` and ``linK.model.1.weight``) holds both;
pass it as ``weights_path`` alone.

The distance: both images go from [0, 1] to [-1, 1], are shifted/scaled per channel by the v0.1 constants,
run through the backbone; the post-ReLU activations of five layers are unit-normalised along channels,
their squared difference is weighted per channel by the linear head, averaged over space, and the five
layer values are summed.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from srkit.errors import CheckpointError, SrkitError

# v0.1 input scaling, applied to images in [-1, 1].
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
# features index of the five tapped ReLUs and their channel counts.
_TAPS = {"alex": (1, 4, 7, 9, 11), "vgg": (3, 8, 15, 22, 29)}
_CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}
# lpips.LPIPS slices: features indices [start, end) per slice (keys keep the features index).
_SLICES = {"alex": ((0, 2), (2, 5), (5, 8), (8, 10), (10, 12)),
           "vgg": ((0, 4), (4, 9), (9, 16), (16, 23), (23, 30))}


def _alexnet_features() -> nn.Sequential:
    """torchvision AlexNet ``features`` up to relu5 (index 11), same indices."""
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(),
    )


class LPIPS(nn.Module):
    """LPIPS v0.1 distance with an AlexNet (``net="alex"``) or VGG16 (``net="vgg"``) backbone.

    ``forward(a, b)``: float NCHW RGB in [0, 1], same shape -> tensor (N,) of distances (0 for identical
    images; symmetric). Differentiable in the inputs; the network itself is frozen and in eval mode.
    """

    def __init__(self, weights_path: str | Path, net: str = "alex", backbone_path: str | Path | None = None) -> None:
        super().__init__()
        from srkit.archs.vgg import VGGFeatures, load_state_dict_file

        if net not in _TAPS:
            raise SrkitError(f"unknown LPIPS network {net!r}; valid: alex, vgg")
        self.net = net
        # Built on the meta device (no random init to waste time on), then the file's tensors are assigned.
        with torch.device("meta"):
            self.features = _alexnet_features() if net == "alex" else VGGFeatures(["relu5_3"], "vgg16").features
            self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in _CHANNELS[net])
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)

        sd = load_state_dict_file(weights_path)
        feats = self._backbone_from_lpips(sd)
        if backbone_path is not None:
            feats = {k: v for k, v in load_state_dict_file(backbone_path).items() if k.startswith("features.")}
            src = backbone_path
        elif feats:
            src = weights_path
        else:
            raise SrkitError(f"{weights_path}: holds no backbone weights; pass backbone_path= a torchvision "
                             f"{'alexnet' if net == 'alex' else 'vgg16'} state_dict file (features.N.weight keys)")
        self._load(self.features, {k[len("features."):]: v for k, v in feats.items()}, src, "backbone")
        lins = {}
        for i in range(5):
            key = f"lin{i}.model.1.weight"
            if key not in sd:
                raise CheckpointError(f"{weights_path}: missing LPIPS linear head {key} "
                                      f"(found e.g. {', '.join(list(sd)[:4])})")
            lins[f"{i}.weight"] = sd[key]
        self._load(self.lins, lins, weights_path, "linear heads")
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    def _backbone_from_lpips(self, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``net.sliceK.N.*`` keys of a full lpips.LPIPS state_dict, renamed to ``features.N.*``."""
        out = {}
        for k, v in sd.items():
            parts = k.split(".")
            if len(parts) == 4 and parts[0] == "net" and parts[1].startswith("slice"):
                out[f"features.{parts[2]}.{parts[3]}"] = v
        return out

    @staticmethod
    def _load(module: nn.Module, sd: dict[str, torch.Tensor], path, what: str) -> None:
        own = module.state_dict()
        missing = [k for k in own if k not in sd]
        bad = [f"{k} {tuple(sd[k].shape)} != {tuple(v.shape)}" for k, v in own.items()
               if k in sd and sd[k].shape != v.shape]
        if missing or bad:
            detail = f"missing {', '.join(missing[:4])}" if missing else f"shapes differ: {'; '.join(bad[:3])}"
            raise CheckpointError(f"{path}: {what} do not fit LPIPS ({detail})")
        module.load_state_dict({k: sd[k].float() for k in own}, assign=True)

    def train(self, mode: bool = True) -> "LPIPS":
        return super().train(False)  # a fixed metric network

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = ((x * 2 - 1) - self.shift) / self.scale
        taps, out = set(_TAPS[self.net]), []
        for i, m in enumerate(self.features):
            x = m(x)
            if i in taps:
                out.append(x)
        return out

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.shape != b.shape or a.dim() != 4 or a.shape[1] != 3:
            raise SrkitError(f"LPIPS expects two NCHW RGB tensors of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
        total = 0
        for fa, fb, lin in zip(self._taps(a), self._taps(b), self.lins):
            # unit length along channels; the small constant keeps all-zero activations finite
            fa = fa / (fa.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            fb = fb / (fb.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + lin((fa - fb) ** 2).mean(dim=(1, 2, 3))
        return total
