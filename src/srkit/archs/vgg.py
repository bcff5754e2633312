"""VGG16 / VGG19 convolutional feature extractor for perceptual losses (no torchvision needed).

The module list is the ``features`` part of the classic VGG (3x3 convs with padding 1, ReLU after each
conv, 2x2 max-pool after each block), laid out so that ``state_dict`` keys are ``features.N.weight`` /
``features.N.bias`` as in torchvision's ``vgg16`` / ``vgg19``: a torchvision-format file loads directly.

Layer names: ``conv{block}_{i}``, ``relu{block}_{i}``, ``pool{block}``. VGG19 has 37 modules:
``conv1_1`` is index 0, ``relu1_1`` 1, ``pool1`` 4, ``conv5_4`` 34, ``relu5_4`` 35, ``pool5`` 36.
VGG16 has 31 (``relu5_3`` is 29).

The network takes whatever the weights were trained on (torchvision: RGB in [0, 1] normalised with
ImageNet mean/std); normalisation is the caller's job (``srkit.losses.PerceptualLoss`` does it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import torch
from torch import nn

from srkit.errors import CheckpointError, SrkitError

# convs per block
_BLOCKS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
_WIDTHS = (64, 128, 256, 512, 512)


def vgg_layer_names(arch: str = "vgg19") -> list[str]:
    """All module names of the VGG ``features`` in order (index in the list = index in ``features``)."""
    if arch not in _BLOCKS:
        raise SrkitError(f"unknown VGG architecture {arch!r}; valid: {', '.join(_BLOCKS)}")
    names = []
    for b, n in enumerate(_BLOCKS[arch], start=1):
        for i in range(1, n + 1):
            names += [f"conv{b}_{i}", f"relu{b}_{i}"]
        names.append(f"pool{b}")
    return names


def vgg_layer_index(name: str, arch: str = "vgg19") -> int:
    """Index of the layer ``name`` (e.g. ``"conv5_4"``) in ``features``; unknown names raise SrkitError."""
    names = vgg_layer_names(arch)
    try:
        return names.index(name)
    except ValueError:
        raise SrkitError(f"unknown {arch} layer {name!r}; valid layers: {', '.join(names)}") from None


class VGGFeatures(nn.Module):
    """VGG ``features`` truncated after the deepest layer that is asked for.

    ``forward(x)`` returns ``{name: activation}`` for ``layers``. Conv outputs are pre-activation (the
    ReLUs are not in-place, so ``conv5_4`` really is the value before ``relu5_4``, as ESRGAN uses it).
    Input: float NCHW, in the range the weights expect.
    """

    def __init__(self, layers: Iterable[str] = ("relu5_4",), arch: str = "vgg19") -> None:
        super().__init__()
        self.arch = arch
        self.layers = list(layers)
        if not self.layers:
            raise SrkitError("VGGFeatures needs at least one layer name")
        names = vgg_layer_names(arch)
        idx = {n: vgg_layer_index(n, arch) for n in self.layers}
        last = max(idx.values())
        mods: list[nn.Module] = []
        c_in = 3
        for name in names[: last + 1]:
            if name.startswith("conv"):
                c_out = _WIDTHS[int(name[4]) - 1]
                mods.append(nn.Conv2d(c_in, c_out, 3, padding=1))
                c_in = c_out
            elif name.startswith("relu"):
                mods.append(nn.ReLU(inplace=False))
            else:
                mods.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*mods)
        self._wanted = {i: n for n, i in idx.items()}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for i, m in enumerate(self.features):
            x = m(x)
            if i in self._wanted:
                out[self._wanted[i]] = x
        return out

    def load_weights(self, path: str | Path) -> None:
        """Load ``features.N.*`` weights from a torchvision-layout file (``.pth``/``.pt`` or ``.safetensors``).

        Extra keys (deeper layers, ``classifier.*``) are ignored; a ``{"state_dict": ...}`` wrapper is
        accepted. A missing file raises SrkitError; missing keys or wrong shapes raise CheckpointError.
        """
        sd = load_state_dict_file(path)
        own = self.state_dict()
        missing = [k for k in own if k not in sd]
        if missing:
            raise CheckpointError(
                f"{path}: not a {self.arch} features file in torchvision layout; missing keys "
                f"{', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''} (found e.g. {', '.join(list(sd)[:4])})")
        bad = [f"{k} {tuple(sd[k].shape)} != {tuple(v.shape)}" for k, v in own.items() if sd[k].shape != v.shape]
        if bad:
            raise CheckpointError(f"{path}: shapes do not fit {self.arch}: {'; '.join(bad[:3])}")
        # assign=True: works for a net built on the meta device (no wasted random init), as PerceptualLoss does
        self.load_state_dict({k: sd[k].float() for k in own}, assign=True)


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A flat ``{name: tensor}`` dict from a ``.safetensors`` or torch file (never downloads anything)."""
    p = Path(path)
    if not p.is_file():
        raise SrkitError(f"weights file not found: {p}")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(p))
        else:
            sd = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt or foreign file: say which one
        raise CheckpointError(f"{p}: cannot read weights ({type(e).__name__}: {e})") from None
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{p}: expected a state_dict (name -> tensor), got {type(sd).__name__}")
    return sd
