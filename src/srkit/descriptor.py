"""What the inference layer must know about a network, stated once per architecture."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelDescriptor:
    """Static facts about a super-resolution network.

    Every srkit network takes and returns float32 RGB tensors in [0, 1], NCHW; the network itself
    carries any range, mean-shift or channel-order adaptation its official weights need.
    """

    arch: str
    """Architecture name as used by ``srkit convert --arch`` (lower case, underscores)."""
    scales: tuple[int, ...] = ()
    """Fixed integer scales the network produces (empty for continuous-scale networks)."""
    scale_range: tuple[float, float] | None = None
    """(min, max) for continuous-scale networks such as LIIF; None for fixed-scale ones."""
    in_channels: int = 3
    """Channels of the input tensor (3 = RGB)."""
    multiple_of: int = 1
    """Input height and width must be multiples of this (the upscaler pads, then crops)."""
    min_size: int = 1
    """Smallest input height/width the network accepts."""
    fixed_size: int | None = None
    """The network takes exactly ``fixed_size`` x ``fixed_size`` inputs (GLEAN): no tiling, no padding."""
    needs_ref: bool = False
    """True for reference-based networks, whose forward takes ``(lr, ref)``."""
    receptive_field: int = 16
    """LR pixels of context needed on each side of an output pixel; the tile overlap is at least this."""
    supports_half: bool = True
    """float16 inference gives sane output."""
    supports_bfloat16: bool = True
    """bfloat16 inference gives sane output."""

    @property
    def continuous(self) -> bool:
        return self.scale_range is not None

    def check_scale(self, scale: float) -> None:
        from .errors import SrkitError

        if self.scale_range is not None:
            lo, hi = self.scale_range
            if not lo <= scale <= hi:
                raise SrkitError(f"scale {scale:g} is outside the range {lo:g}..{hi:g} of {self.arch}")
        elif scale not in self.scales:
            raise SrkitError(f"{self.arch} upscales by {', '.join(map(str, self.scales))}, not by {scale:g}")
