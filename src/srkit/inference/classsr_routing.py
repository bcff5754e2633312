"""ClassSR whole-image inference: cut the LR image into patches, classify them, run each class's patches
**together** through its branch, and stitch the SR patches back with overlaps averaged.

The official test (``test_ClassSR.py``) runs the patches one at a time, so every patch pays the per-call
overhead of a small convolution and the FLOPs saved by the small branches never show on the clock. Here the
patches of one class form batches (``net.batch_size`` at a time), which makes the saving a wall-clock one.

Patch grid (LR pixels): tops/lefts ``0, stride, 2 * stride, ...`` while a patch fits. The official protocol
stops there and drops the right/bottom remainder (its output is smaller than ``scale x`` the input); by
default srkit adds one last patch flush with the border so that the whole image is covered. Overlapping
SR pixels are averaged (with the official stride 28 and patch 32 this is exactly the official "divide the
overlap stripes by 2" rule).

``official=True`` reproduces the official protocol: remainder dropped and each SR patch rounded to 8 bits
before stitching (the official code converts each patch to uint8 first).

FLOPs (:func:`flops_report`): the official per-patch constants of ``cal_FLOPs`` (2 x MACs per 32x32 LR
patch; the FSRCNN ones count the transposed conv the way ``thop`` does, 16x its true cost at x4) for
paper-comparable percentages, and true counts from :func:`srkit.profile.count_flops`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SrkitError

if TYPE_CHECKING:
    from ..archs.classsr import ClassSR

CLASS_NAMES = ("simple", "medium", "hard")

# Official cal_FLOPs constants per 32x32 LR patch at x4: branch 1/2/3 and the classifier term (FSRCNN only).
OFFICIAL_PATCH_FLOPS: dict[str, tuple[float, float, float, float]] = {
    "fsrcnn": (141e6, 304e6, 468e6, 7.4e6),
    "carn_m": (0.38e9, 0.77e9, 1.15e9, 0.0),
    "msrresnet": (1.66e9, 3.44e9, 5.20e9, 0.0),
    "rcan": (10.33e9, 19.90e9, 32.60e9, 0.0),
}


@dataclass
class Routing:
    """Where the patches were and which branch each took."""

    positions: list[tuple[int, int]]
    """(top, left) of each patch in LR pixels, row-major."""
    classes: torch.Tensor
    """(N, P) int64: the branch (0 simple, 1 medium, 2 hard) of patch p of image n."""
    image_size: tuple[int, int]
    """(H, W) of the LR input."""
    covered: tuple[int, int]
    """(H, W) of the LR region the output covers: the whole image unless ``official``."""
    patch_size: int
    stride: int
    scale: int
    official: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def counts(self) -> tuple[int, int, int]:
        """Patches per class over all images."""
        c = torch.bincount(self.classes.flatten().cpu(), minlength=3)
        return int(c[0]), int(c[1]), int(c[2])

    @property
    def shares(self) -> tuple[float, float, float]:
        n = max(1, sum(self.counts))
        return tuple(c / n for c in self.counts)  # type: ignore[return-value]


def patch_starts(length: int, patch: int, stride: int, cover: bool = True) -> list[int]:
    """Patch starts along one axis: ``0, stride, ...`` while ``start + patch <= length``; with ``cover`` one
    more start ``length - patch`` when the last patch stops short of the end. ``length >= patch``."""
    if length < patch:
        raise SrkitError(f"image side {length} is smaller than the ClassSR patch size {patch}")
    starts = list(range(0, length - patch + 1, stride))
    if cover and starts[-1] + patch < length:
        starts.append(length - patch)
    return starts


def forced_classes(n: int, shares: Sequence[float], seed: int = 0) -> torch.Tensor:
    """``n`` class indices with the given shares (rounded), in random order: for timing forced routes."""
    total = float(sum(shares))
    counts = [round(n * s / total) for s in shares]
    counts[-1] = n - sum(counts[:-1])
    cls = torch.cat([torch.full((max(0, c),), k, dtype=torch.long) for k, c in enumerate(counts)])[:n]
    g = torch.Generator().manual_seed(seed)
    return cls[torch.randperm(n, generator=g)]


def routed_upscale(
    net: ClassSR,
    lr: torch.Tensor,
    *,
    official: bool = False,
    classes: torch.Tensor | None = None,
    per_patch: bool = False,
    batch_size: int | None = None,
    fast: bool = True,
) -> tuple[torch.Tensor, Routing]:
    """Super-resolve LR images (N, 3, H, W), RGB [0, 1], by ClassSR's patch routing.

    Args:
        net: a :class:`~srkit.archs.classsr.ClassSR` (its mode is not changed; call ``.eval()`` for BatchNorm
            branches such as CARN-M).
        official: drop the right/bottom remainder and round each SR patch to 8 bits, as the official test does.
        classes: force the routes: (N * P,) or (N, P) class indices instead of the classifier's argmax.
        per_patch: run every patch alone (the official execution; for comparisons), not batched per class.
        batch_size: patches per branch call (default ``net.batch_size``).
        fast: without autograd and outside ``official`` mode, run branches that contain a stride > 1 transposed
            conv (FSRCNN) through a cached :func:`accelerated` copy, the Class-Module as matrix products
            (:func:`_fast_classifier`) and, on CPU, everything in channels-last layout (same outputs up to
            float rounding, ~1e-6).

    Returns: (SR (N, 3, scale * Hc, scale * Wc), :class:`Routing`) where (Hc, Wc) = ``routing.covered``, the
    whole image by default (channels-last in memory on the CPU fast path). Images smaller than a patch are padded (edge replicate) and the output cropped;
    in ``official`` mode they are an error, as in the official code.
    """
    n, c, h, w = lr.shape
    p, s, r = net.patch_size, net.stride, net.scale
    if c != 3:
        raise SrkitError(f"ClassSR takes RGB input (3 channels), got {c}")
    ph, pw = max(0, p - h), max(0, p - w)
    if (ph or pw) and official:
        raise SrkitError(f"image {h}x{w} is smaller than the {p}x{p} patch of the official ClassSR protocol")
    x = F.pad(lr, (0, pw, 0, ph), mode="replicate") if ph or pw else lr
    hh, ww = x.shape[-2:]
    tops = patch_starts(hh, p, s, cover=not official)
    lefts = patch_starts(ww, p, s, cover=not official)
    positions = [(t, l) for t in tops for l in lefts]
    hc, wc = (tops[-1] + p, lefts[-1] + p)
    patches = torch.stack([x[:, :, t : t + p, l : l + p] for t, l in positions], dim=1)  # (N, P, 3, p, p)
    flat = patches.reshape(-1, 3, p, p)
    fast = fast and not official and not torch.is_grad_enabled()
    # On CPU the fast path runs the convolutions in channels-last layout: oneDNN's native one, which spares a
    # layout reorder around every convolution (worth most for the narrow branches). The SR image is then
    # assembled channels-last too, so that each stitched patch is a run of contiguous rows.
    nhwc = fast and lr.device.type == "cpu"
    if nhwc:
        flat = flat.contiguous(memory_format=torch.channels_last)
    if classes is None:
        classify = _fast_classifier(net) if fast else net.classify
        cls = torch.cat([net.routing_logits(classify(flat[i : i + 1024])).argmax(dim=1)
                         for i in range(0, flat.shape[0], 1024)])
    else:
        cls = classes.reshape(-1).to(device=lr.device, dtype=torch.long)
        if cls.numel() != flat.shape[0]:
            raise SrkitError(f"forced classes: {cls.numel()} values for {flat.shape[0]} patches")
    out = lr.new_zeros(n, 3, hc * r, wc * r)
    if nhwc:
        out = out.contiguous(memory_format=torch.channels_last)
    npos = len(positions)
    bs = 1 if per_patch else (batch_size or net.batch_size)
    branches = _fast_branches(net, channels_last=nhwc) if fast else net.branches
    for k, branch in enumerate(branches):
        idx = (cls == k).nonzero(as_tuple=True)[0]
        for start in range(0, idx.numel(), bs):
            sel = idx[start : start + bs]
            sr = branch(flat[sel])
            if official:
                sr = sr.clamp(0, 1).mul(255).round().div(255)
            for j, q in enumerate(sel.tolist()):
                t, l = positions[q % npos]
                out[q // npos, :, t * r : (t + p) * r, l * r : (l + p) * r] += sr[j]
    # The grid is a product of row and column starts, so a pixel's coverage is (rows covering it) x (columns
    # covering it): divide only the overlap stripes, one axis at a time, instead of the whole image.
    _divide_stripes(out, _coverage(tops, p, hc, r), dim=2)
    _divide_stripes(out, _coverage(lefts, p, wc, r), dim=3)
    if ph or pw:
        out = out[..., : h * r, : w * r]
        hc, wc = min(hc, h), min(wc, w)
    routing = Routing(positions, cls.reshape(n, npos), (h, w), (hc, wc), p, s, r, official)
    return out, routing


class SubPixelConvTranspose(nn.Module):
    """A stride-``s`` ``ConvTranspose2d`` rewritten exactly as a small ordinary convolution to ``C_out * s * s``
    channels followed by a pixel shuffle.

    Output pixel ``y = s * i + a`` of the transposed conv gathers input pixels ``j`` with kernel tap
    ``k = y + p - s * j`` in ``[0, K)``, i.e. ``j = i - m`` with ``k = s * m + a + p``: for each phase ``a`` a
    few neighbours of ``i``. Gathering them with a conv lets the work run as one matrix product instead of
    PyTorch's column-to-image scatter, which on CPU costs about the same whatever the input width (FSRCNN's
    x4 tail then dominates the narrow branches). More multiply-adds (all phases see the full neighbourhood),
    much less time. Only for transposed convs whose output is exactly ``s`` times the input.
    """

    def __init__(self, deconv: nn.ConvTranspose2d) -> None:
        super().__init__()
        (s, s2), (k, k2), (p, p2) = deconv.stride, deconv.kernel_size, deconv.padding
        if s != s2 or k != k2 or p != p2 or deconv.groups != 1 or deconv.dilation != (1, 1):
            raise ValueError("only square, ungrouped, undilated transposed convolutions")
        if deconv.output_padding[0] != 2 * p - (k - s) or deconv.output_padding[1] != deconv.output_padding[0]:
            raise ValueError("the transposed convolution does not produce exactly scale x the input size")
        m_lo = -((p + s - 1) // s)  # smallest m with s*m + a + p >= 0 for some phase a (a = s - 1)
        m_hi = (k - 1 - p) // s  # largest m with s*m + a + p <= k - 1 for some phase (a = 0)
        kc = m_hi - m_lo + 1
        w = deconv.weight.detach()  # (C_in, C_out, k, k)
        c_in, c_out = w.shape[0], w.shape[1]
        wc = w.new_zeros(c_out, s, s, c_in, kc, kc)
        for a in range(s):
            for u in range(kc):
                ky = s * (m_hi - u) + a + p
                if not 0 <= ky < k:
                    continue
                for b in range(s):
                    for v in range(kc):
                        kx = s * (m_hi - v) + b + p
                        if 0 <= kx < k:
                            wc[:, a, b, :, u, v] = w[:, :, ky, kx].t()
        self.scale = s
        self.pad = (m_hi, -m_lo, m_hi, -m_lo)  # left, right, top, bottom of the input
        self.weight = nn.Parameter(wc.reshape(c_out * s * s, c_in, kc, kc), requires_grad=False)
        bias = deconv.bias.detach() if deconv.bias is not None else w.new_zeros(c_out)
        self.bias = nn.Parameter(bias.repeat_interleave(s * s), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(F.pad(x, self.pad), self.weight, self.bias)
        return F.pixel_shuffle(y, self.scale)


def accelerated(net: nn.Module) -> nn.Module:
    """A copy of ``net`` for inference in which every stride > 1 ``ConvTranspose2d`` that yields exactly
    ``stride x`` its input is replaced by :class:`SubPixelConvTranspose` (same outputs up to float rounding).
    Other layers are shared by value (deep copy); the key layout of the copy differs, so save the original."""
    fast = copy.deepcopy(net)
    for name, mod in list(fast.named_modules()):
        for child_name, child in list(mod.named_children()):
            if isinstance(child, nn.ConvTranspose2d) and child.stride[0] > 1:
                try:
                    setattr(mod, child_name, SubPixelConvTranspose(child))
                except ValueError:
                    pass
    return fast


def _param_key(module: nn.Module) -> tuple:
    """Identifies the current parameter values of ``module`` (storage, in-place version, device, dtype)."""
    return tuple((p.data_ptr(), p._version, str(p.device), p.dtype) for p in module.parameters())


def _net_cache(net: ClassSR) -> dict:
    cache = net.__dict__.get("_classsr_fast")
    if cache is None:
        cache = {}
        object.__setattr__(net, "_classsr_fast", cache)  # a plain attribute: not a submodule, not saved
    return cache


def _fast_branches(net: ClassSR, channels_last: bool = False) -> list[nn.Module]:
    """The branches for inference: those with a transposed conv replaced by an :func:`accelerated` copy, all
    in channels-last layout when asked (:func:`cached_fast_copy`, cached on the network)."""
    cache = _net_cache(net)
    out = []
    for k, b in enumerate(net.branches):
        has_deconv = any(isinstance(m, nn.ConvTranspose2d) and m.stride[0] > 1 for m in b.modules())
        if not has_deconv and not channels_last:
            out.append(b)
        else:
            out.append(cached_fast_copy(b, cache, ("branch", k), channels_last))
    return out


def cached_fast_copy(module: nn.Module, cache: dict, slot: Any, channels_last: bool = False) -> nn.Module:
    """An :func:`accelerated` copy of ``module`` for inference, in channels-last layout when asked, kept in
    ``cache[slot]`` and rebuilt when any of the module's parameters changed (storage, in-place version,
    device)."""
    key = (_param_key(module), channels_last)
    hit = cache.get(slot)
    if hit is None or hit[0] != key:
        with torch.inference_mode(False), torch.no_grad():
            fast = accelerated(module).eval()
            if channels_last:
                fast = fast.to(memory_format=torch.channels_last)
        hit = (key, fast)
        cache[slot] = hit
    return hit[1]


class _MatmulClassifier:
    """The Class-Module as matrix products, for inference: its 4x4 stride-4 conv sees disjoint 4x4 blocks, so
    it is a linear map of each block's 48 values, and the 1x1 convs that follow are linear maps per block; the
    global mean commutes with the last (activation-free) 1x1 conv, which therefore runs once per patch instead
    of once per block. Same logits up to float rounding."""

    def __init__(self, classifier: nn.Module) -> None:
        convs = [m for m in classifier.CondNet if isinstance(m, nn.Conv2d)]
        self.block = convs[0].kernel_size[0]
        self.weights = [c.weight.detach().flatten(1).t().contiguous() for c in convs]
        self.biases = [c.bias.detach().clone() for c in convs]
        self.slope = next(m.negative_slope for m in classifier.CondNet if isinstance(m, nn.LeakyReLU))
        self.last = classifier.lastOut

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        h = F.pixel_unshuffle(x, self.block)  # (n, 3 * b * b, H / b, W / b): channel order of the conv weight
        h = h.flatten(2).transpose(1, 2).reshape(-1, h.shape[1])
        for w, b in zip(self.weights[:-1], self.biases[:-1]):
            h = F.leaky_relu(torch.addmm(b, h, w), self.slope)
        h = h.view(n, -1, h.shape[1]).mean(dim=1)
        return self.last(torch.addmm(self.biases[-1], h, self.weights[-1]))


def _fast_classifier(net: ClassSR) -> Callable[[torch.Tensor], torch.Tensor]:
    """:class:`_MatmulClassifier` for the standard Class-Module (cached like the branches), else ``net.classify``."""
    from ..archs.classsr import Classifier

    layers = list(getattr(net.classifier, "CondNet", []))
    types = [type(m) for m in layers]
    # conv, LeakyReLU, conv, ..., conv: the first conv on disjoint square blocks, the others 1x1
    standard = (type(net.classifier) is Classifier and len(layers) % 2 == 1
                and types[0::2] == [nn.Conv2d] * len(types[0::2]) and types[1::2] == [nn.LeakyReLU] * len(types[1::2])
                and layers[0].kernel_size == layers[0].stride and layers[0].kernel_size[0] == layers[0].kernel_size[1]
                and layers[0].padding == (0, 0) and net.patch_size % layers[0].stride[0] == 0
                and all(m.kernel_size == (1, 1) for m in layers[2::2]))
    if not standard:
        return net.classify
    cache = _net_cache(net)
    key = _param_key(net.classifier)
    hit = cache.get("classifier")
    if hit is None or hit[0] != key:
        hit = (key, _MatmulClassifier(net.classifier))
        cache["classifier"] = hit
    return hit[1]


def _coverage(starts: list[int], patch: int, length: int, scale: int) -> list[int]:
    """How many patches cover each LR position along one axis (the SR positions repeat it ``scale`` times)."""
    cov = [0] * length
    for a in starts:
        for i in range(a, a + patch):
            cov[i] += 1
    return cov


def _divide_stripes(out: torch.Tensor, cov: list[int], dim: int) -> None:
    """Divide the runs of ``out`` along ``dim`` where the coverage exceeds 1, in place."""
    r = out.shape[dim] // len(cov)
    i = 0
    while i < len(cov):
        if cov[i] <= 1:
            i += 1
            continue
        j = i
        while j < len(cov) and cov[j] == cov[i]:
            j += 1
        out.narrow(dim, i * r, (j - i) * r).div_(cov[i])
        i = j


def upscale_image(net: ClassSR, lr: torch.Tensor, **kwargs: Any) -> tuple[torch.Tensor, Routing]:
    """:func:`routed_upscale` in eval mode under ``torch.inference_mode()`` (restores the training flag)."""
    was_training = net.training
    net.eval()
    try:
        with torch.inference_mode():
            return routed_upscale(net, lr, **kwargs)
    finally:
        net.train(was_training)


def official_patch_flops(net: ClassSR) -> tuple[float, float, float, float] | None:
    """The official per-patch constants when ``net`` is one of the four official configurations (backbone,
    widths, x4, 32x32 patches, default backbone arguments); None otherwise."""
    from ..archs.classsr import OFFICIAL_WIDTHS

    if (net.backbone in OFFICIAL_PATCH_FLOPS and tuple(net.widths) == OFFICIAL_WIDTHS.get(net.backbone)
            and net.scale == 4 and net.patch_size == 32 and not net.backbone_args):
        return OFFICIAL_PATCH_FLOPS[net.backbone]
    return None


def true_patch_flops(net: ClassSR) -> tuple[int, int, int, int]:
    """True FLOPs (2 x MACs, :func:`srkit.profile.count_flops`) of branch 1/2/3 and the classifier on one
    patch; cached on the network."""
    from ..profile import count_flops

    key = ("_classsr_true_flops", net.patch_size, net.scale)
    cached = getattr(net, "_classsr_flops_cache", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    ref = next(net.parameters())
    x = torch.rand(1, 3, net.patch_size, net.patch_size, device=ref.device, dtype=ref.dtype)
    was_training = net.training
    net.eval()
    try:
        values = tuple(count_flops(b, x) for b in net.branches) + (count_flops(net.classifier, x),)
    finally:
        net.train(was_training)
    object.__setattr__(net, "_classsr_flops_cache", (key, values))
    return values  # type: ignore[return-value]


def flops_report(net: ClassSR, routing: Routing) -> dict[str, Any]:
    """FLOPs of a routed image, per patch and relative to running every patch through branch 3.

    Keys: ``counts`` and ``shares`` (per class), ``patches``; ``official_flops_per_patch`` and
    ``official_percent`` (the paper's numbers: count-weighted branch constants, +7.4M for FSRCNN, divided by
    branch 3's constant; None for non-official configurations); ``true_flops_per_patch`` (branches +
    classifier), ``true_percent`` (the same over branch 3 alone) and ``true_flops_total`` (all patches of
    all images, classifier included).
    """
    return flops_from_counts(net, routing.counts)


def flops_from_counts(net: ClassSR, counts: Sequence[int]) -> dict[str, Any]:
    """:func:`flops_report` from patch counts per class (e.g. ``net.pop_routed_counts()`` after an image)."""
    counts = [int(c) for c in counts]
    total = max(1, sum(counts))
    shares = [c / total for c in counts]
    rep: dict[str, Any] = {"counts": list(counts), "shares": shares, "patches": sum(counts),
                           "classes": list(CLASS_NAMES)}
    off = official_patch_flops(net)
    if off is not None:
        per = sum(sh * f for sh, f in zip(shares, off[:3])) + off[3]
        rep["official_flops_per_patch"] = per
        rep["official_percent"] = 100.0 * per / off[2]
    else:
        rep["official_flops_per_patch"] = None
        rep["official_percent"] = None
    tru = true_patch_flops(net)
    per_true = sum(sh * f for sh, f in zip(shares, tru[:3])) + tru[3]
    rep["true_flops_per_patch"] = per_true
    rep["true_percent"] = 100.0 * per_true / tru[2]
    rep["true_flops_total"] = per_true * sum(counts)
    return rep


def image_report(net: ClassSR, lr: torch.Tensor, **kwargs: Any) -> tuple[torch.Tensor, dict[str, Any]]:
    """Upscale one LR image and return (SR, :func:`flops_report` dict): the call for a per-image eval log."""
    sr, routing = upscale_image(net, lr, **kwargs)
    return sr, flops_report(net, routing)


__all__ = ["CLASS_NAMES", "OFFICIAL_PATCH_FLOPS", "Routing", "SubPixelConvTranspose", "accelerated", "flops_from_counts", "flops_report", "forced_classes", "image_report",
           "official_patch_flops", "patch_starts", "routed_upscale", "true_patch_flops", "upscale_image"]
