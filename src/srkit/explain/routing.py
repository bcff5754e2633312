"""The ClassSR routing picture: each LR patch's region of the SR image framed and lightly tinted in its
class's colour, green = simple (branch 1), yellow = medium (branch 2), red = hard (branch 3), as in the
paper's figures."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from ..inference.classsr_routing import Routing

CLASS_COLORS = ((0.0, 1.0, 0.0), (1.0, 1.0, 0.0), (1.0, 0.0, 0.0))
"""RGB in [0, 1] of classes 0 (simple, green), 1 (medium, yellow), 2 (hard, red)."""


def routing_picture(
    sr: torch.Tensor,
    routing: Routing,
    *,
    image: int = 0,
    border: int = 2,
    tint: float = 0.2,
) -> torch.Tensor:
    """Draw the routes of image ``image`` of ``routing`` over its SR output.

    Args:
        sr: (3, H, W) or (N, 3, H, W) RGB [0, 1], the output of the routed call (``scale * routing.covered``).
        border: frame width in SR pixels, drawn inside each patch's non-overlapping cell (the ``stride``
            square at its top-left, clipped to the image), so that neighbouring frames do not cover each other.
        tint: weight of the class colour blended into the cell (0 disables the tint).

    Returns: (3, H, W) float32 RGB in [0, 1] (a new tensor).
    """
    img = (sr[image] if sr.dim() == 4 else sr).detach().float().clamp(0, 1).cpu().clone()
    r, s, p = routing.scale, routing.stride, routing.patch_size
    _, h, w = img.shape
    classes = routing.classes[image].cpu().tolist()
    for (t, l), k in zip(routing.positions, classes):
        y0, x0 = t * r, l * r
        # Patches flush with the border overlap their neighbour by more than the usual amount: frame the
        # full patch there so the frame reaches the image edge.
        y1 = min(h, y0 + (p if t + p >= routing.covered[0] else s) * r)
        x1 = min(w, x0 + (p if l + p >= routing.covered[1] else s) * r)
        color = torch.tensor(CLASS_COLORS[k]).view(3, 1, 1)
        cell = img[:, y0:y1, x0:x1]
        if tint > 0:
            cell.mul_(1 - tint).add_(tint * color)
        b = max(0, min(border, (y1 - y0) // 2, (x1 - x0) // 2))
        if b:
            cell[:, :b, :] = color
            cell[:, -b:, :] = color
            cell[:, :, :b] = color
            cell[:, :, -b:] = color
    return img


def save_routing_picture(path: str, sr: torch.Tensor, routing: Routing, **kwargs: object) -> None:
    """Write :func:`routing_picture` to an 8-bit image file (format from the suffix)."""
    from ..data.io import to_array, write_image

    write_image(path, to_array(routing_picture(sr, routing, **kwargs)))  # type: ignore[arg-type]


__all__ = ["CLASS_COLORS", "routing_picture", "save_routing_picture"]
