"""Plane-sweep geometry of Cross-MPI: fronto-parallel planes in the target camera, per-plane homographies
and the inverse warp of the reference image onto each plane.

Conventions (the same as the official Cross-MPI / Stereo Magnification code):

* **Views.** The *target* view is the one being super-resolved (the LR camera; the official code calls its
  upsampled image ``ref_image``). The *reference* view is the other, high-resolution camera (the official
  ``src_images[..., 3:]``). The plane-sweep volume is built in the target camera: every plane is
  ``Z = d`` in target-camera coordinates, i.e. normal ``n = (0, 0, 1)``; in the official plane equation
  ``n^T X + a = 0`` this is ``a = -d``.
* **Poses.** Camera poses are 4x4 (or 3x4) *world-to-camera* matrices ``[R | t]`` (RealEstate10K's
  layout): ``X_cam = R X_world + t``. The relative pose used by the warp maps *target-camera* points to
  *reference-camera* points, ``T = ref_w2c @ inverse(tgt_w2c)`` (:func:`relative_pose`).
* **Intrinsics.** 3x3 pixel matrices ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` (the official loader makes
  them from RealEstate10K's normalised intrinsics as ``fx * W, fy * H, cx * W, cy * H``). The official
  ``intrinsics`` tensor is ``[batch, 6, 3]``: rows 0-2 are the target camera's, rows 3-5 the reference's.
* **Pixel centres.** Pixel ``(i, j)`` (row, column) sits at pixel coordinate ``(x, y) = (j, i)``: centres at
  integers, ``(0, 0)`` the centre of the top-left pixel, x to the right, y down. (The official code notes
  that this shifts the principal point by half a pixel compared with a ``[-0.5, W - 0.5]`` domain; srkit
  keeps the official convention so that PSVs match.)
* **Homography.** For depth ``d`` the target pixel ``p`` maps to the reference pixel
  ``H_d p`` with ``H_d = K_ref (R + t n^T / d) K_tgt^-1`` (equivalently ``K_ref (R - t n^T / a) K_tgt^-1``),
  followed by division by the third coordinate. The official code evaluates the same map point by point
  (back-project with depth ``d``, transform, project); :func:`plane_sweep_volume` scales ``H_d`` by ``d``
  so that the third coordinate is that point's depth and the official ``z + 1e-10`` guard acts the same;
  the two then agree to float64 rounding (tested against a transliteration of the official warp).
* **Sampling.** Bilinear, as ``tf.contrib.resampler``: a sample at ``(x, y)`` mixes the four pixels
  around it, and pixels outside the image count as ``fill``. The official warp runs on images in
  [-1, 1] with zeros outside, i.e. mid-grey; srkit's images are in [0, 1], so ``fill=0.5`` gives exactly
  the official PSV after the map ``v -> 2 v - 1``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..errors import SrkitError

OFFICIAL_MIN_DEPTH = 1.0
OFFICIAL_MAX_DEPTH = 100.0
OFFICIAL_NUM_PLANES = 32


def inverse_depths(min_depth: float = OFFICIAL_MIN_DEPTH, max_depth: float = OFFICIAL_MAX_DEPTH,
                   num_planes: int = OFFICIAL_NUM_PLANES) -> list[float]:
    """Plane depths uniform in inverse depth from ``min_depth`` to ``max_depth`` (both included),
    sorted in descending order, i.e. **farthest plane first** (the official ``inv_depths`` order; plane 0
    of the PSV is at ``max_depth``, the last at ``min_depth``)."""
    if not 0 < min_depth < max_depth:
        raise SrkitError(f"plane sweep needs 0 < min_depth < max_depth, got {min_depth} and {max_depth}")
    if num_planes < 2:
        raise SrkitError(f"plane sweep needs at least 2 planes, got {num_planes}")
    near, far = 1.0 / min_depth, 1.0 / max_depth
    depths = [min_depth, max_depth]
    for i in range(1, num_planes - 1):
        depths.append(1.0 / (near + (far - near) * i / (num_planes - 1)))
    return sorted(depths, reverse=True)


def _as_4x4(m: torch.Tensor) -> torch.Tensor:
    if m.shape[-2:] == (4, 4):
        return m
    if m.shape[-2:] == (3, 4):
        filler = torch.zeros(*m.shape[:-2], 1, 4, dtype=m.dtype, device=m.device)
        filler[..., 0, 3] = 1.0
        return torch.cat([m, filler], dim=-2)
    raise SrkitError(f"a camera pose must be 3x4 or 4x4, got shape {tuple(m.shape)}")


def relative_pose(tgt_w2c: torch.Tensor, ref_w2c: torch.Tensor) -> torch.Tensor:
    """(..., 4, 4) transform from target-camera to reference-camera coordinates,
    ``ref_w2c @ inverse(tgt_w2c)`` (the official ``src_pose @ inverse(ref_pose)``), computed in float64.
    Both poses are world-to-camera, 3x4 or 4x4."""
    a = _as_4x4(tgt_w2c).double()
    b = _as_4x4(ref_w2c).double()
    return b @ torch.linalg.inv(a)


def plane_homographies(depths: Sequence[float] | torch.Tensor, k_tgt: torch.Tensor, k_ref: torch.Tensor,
                       pose: torch.Tensor) -> torch.Tensor:
    """Homographies from target pixels to reference pixels, one per plane, float64.

    Args:
        depths: D plane depths in the target camera (e.g. :func:`inverse_depths`).
        k_tgt, k_ref: (3, 3) or (N, 3, 3) pixel intrinsics of the target and reference cameras.
        pose: (4, 4)/(3, 4) or (N, 4, 4)/(N, 3, 4) target-camera -> reference-camera transform
            (:func:`relative_pose`).

    Returns:
        (N, D, 3, 3) matrices ``K_ref (R + t n^T / d) K_tgt^-1`` with ``n = (0, 0, 1)``.
    """
    pose = pose.double()
    if pose.dim() == 2:
        pose = pose[None]
    k_tgt = k_tgt.double().to(pose.device)
    k_ref = k_ref.double().to(pose.device)
    if k_tgt.dim() == 2:
        k_tgt = k_tgt[None]
    if k_ref.dim() == 2:
        k_ref = k_ref[None]
    d = torch.as_tensor(depths, dtype=torch.float64, device=pose.device).reshape(1, -1, 1, 1)
    rot = pose[:, None, :3, :3]
    t = pose[:, None, :3, 3:]
    n = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64, device=pose.device).reshape(1, 1, 1, 3)
    return k_ref[:, None] @ (rot + (t @ n) / d) @ torch.linalg.inv(k_tgt)[:, None]


def pixel_grid(height: int, width: int, device: torch.device | None = None) -> torch.Tensor:
    """(H, W, 3) float64 homogeneous pixel coordinates ``(x, y, 1)`` with centres at integers."""
    ys = torch.arange(height, dtype=torch.float64, device=device)
    xs = torch.arange(width, dtype=torch.float64, device=device)
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([x, y, torch.ones_like(x)], dim=-1)


def sample_bilinear(img: torch.Tensor, coords: torch.Tensor, fill: float = 0.5) -> torch.Tensor:
    """Sample (N, C, Hs, Ws) images at pixel coordinates ``coords`` (N, Ht, Wt, 2) as ``(x, y)``.

    Pixel centres at integers; bilinear; the four neighbours outside the image contribute ``fill``
    (so a sample far outside is ``fill``, one half a pixel outside the border is the mean of the border
    pixel and ``fill``), which is ``tf.contrib.resampler`` on ``img - fill``, plus ``fill``.
    """
    n, _, hs, ws = img.shape
    if hs < 2 or ws < 2:
        raise SrkitError(f"bilinear warping needs images of at least 2x2 pixels, got {hs}x{ws}")
    # align_corners=True puts pixel centres at integer positions, the resampler's convention.
    gx = coords[..., 0] * (2.0 / (ws - 1)) - 1.0
    gy = coords[..., 1] * (2.0 / (hs - 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1).to(img.dtype)
    out = F.grid_sample(img - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out + fill


def warp_homographies(img: torch.Tensor, homographies: torch.Tensor, out_size: tuple[int, int] | None = None,
                      fill: float = 0.5) -> torch.Tensor:
    """Inverse-warp ``img`` (N, C, Hs, Ws) once per homography (N, D, 3, 3) mapping *output* pixels to
    *input* pixels; returns (N, D, C, Ht, Wt), ``(Ht, Wt) = out_size`` (default the input size)."""
    n, c, hs, ws = img.shape
    ht, wt = out_size if out_size is not None else (hs, ws)
    if homographies.shape[0] != n:
        homographies = homographies.expand(n, *homographies.shape[1:])
    d = homographies.shape[1]
    p = pixel_grid(ht, wt, img.device).reshape(1, 1, -1, 3)  # (1, 1, HW, 3)
    q = p @ homographies.double().transpose(-1, -2)  # (N, D, HW, 3)
    z = q[..., 2:]
    # Same guard as the official projection (z + 1e-10): no division by an exact zero.
    xy = q[..., :2] / (z + 1e-10)
    coords = xy.reshape(n * d, ht, wt, 2)
    src = img[:, None].expand(n, d, c, hs, ws).reshape(n * d, c, hs, ws)
    return sample_bilinear(src, coords, fill).reshape(n, d, c, ht, wt)


def plane_sweep_volume(ref: torch.Tensor, depths: Sequence[float] | torch.Tensor, pose: torch.Tensor,
                       k_tgt: torch.Tensor, k_ref: torch.Tensor | None = None,
                       out_size: tuple[int, int] | None = None, fill: float = 0.5) -> torch.Tensor:
    """The reference image warped into the target camera for every plane: (N, D, C, Ht, Wt).

    Args:
        ref: (N, C, H, W) reference (HR) image, srkit's [0, 1] RGB.
        depths: D plane depths in the target camera, in the order the network expects (official:
            :func:`inverse_depths`, farthest first).
        pose: target-camera -> reference-camera transform (:func:`relative_pose`), (4, 4) or (N, 4, 4).
        k_tgt: target intrinsics (3, 3) or (N, 3, 3), pixels of the output grid.
        k_ref: reference intrinsics; default ``k_tgt`` (the official training data use one K for both).
        out_size: (Ht, Wt) of the target grid; default the reference's size (as the official code).
        fill: value of samples outside the reference (0.5 = the official zero in [-1, 1]).
    """
    if ref.dim() != 4:
        raise SrkitError(f"plane_sweep_volume expects an (N, C, H, W) reference, got shape {tuple(ref.shape)}")
    h = plane_homographies(depths, k_tgt, k_tgt if k_ref is None else k_ref, pose.to(ref.device))
    # Scaled by d (a homography's scale is free), the third coordinate of H p is the point's depth in the
    # reference camera, the official projection's denominator, so its +1e-10 guard acts identically.
    d = torch.as_tensor(depths, dtype=torch.float64, device=h.device).reshape(1, -1, 1, 1)
    return warp_homographies(ref, h * d, out_size, fill)


__all__ = ["OFFICIAL_MAX_DEPTH", "OFFICIAL_MIN_DEPTH", "OFFICIAL_NUM_PLANES", "inverse_depths", "pixel_grid",
           "plane_homographies", "plane_sweep_volume", "relative_pose", "sample_bilinear", "warp_homographies"]
