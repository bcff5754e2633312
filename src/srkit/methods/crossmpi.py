"""Cross-MPI training (Mayzazhou/Cross-MPI ``crossmpi/mpi.py`` ``build_train_graph``, ``scripts/train_*.sh``).

Three official stages, each started from the previous one's weights (``model.init``), all with Adam lr 2e-4,
beta1 0.9 (``train.optimizer: {lr: 2.0e-4, betas: [0.9, 0.999]}``), a constant rate and batch 1 of 384x768
RealEstate10K frame pairs at x8:

1. ``method.args.stage: lowres`` (``train_lowres.sh``, 817,000 steps): ``tf.nn.l2_loss(init_syn - HR/4)`` in
   the official [-1, 1] range, i.e. half the *sum* of squares; only the feature extractor and the 1/4
   attention learn (the rest of the network is not run).
2. ``stage: hr_syn`` (``train_lowres_pretrained.sh``, length not stated): the ``vgg_lowresL1`` loss on
   ``hr_syn``; the fusion net is not run.
3. ``stage: full`` (``train_pretrained.sh``, 302,050 steps): ``vgg_lowresL1`` on the SR output.

``vgg_lowresL1`` = ``2 p0 + p1 + p2 + p3 + p4 + p5 + 0.01 p_lowres`` on images in 0..255: ``p0`` the mean
absolute pixel difference; ``p1..p5`` mean absolute differences of VGG19 features (MatConvNet
``imagenet-vgg-verydeep-19.mat``, RGB minus the ImageNet mean 123.68/116.779/103.939, post-ReLU, **average**
pooling as the official ``build_vgg19``) ``conv1_2 / 2.6``, ``conv2_2 / 4.8``, ``conv3_2 / 3.7``,
``conv4_2 / 5.6``, ``conv5_2 * 10 / 1.5``; ``p_lowres`` the mean absolute difference of ``init_syn`` and the
HR shrunk by 4 the official way (:func:`srkit.archs.crossmpi.official_pil_downsample`).

The stage fixes the loss, so ``train.losses`` must be left out (and ``train.gan`` off). Batches are dicts of float32 tensors in [0, 1]:
``hr`` (N, 3, H, W) and either ``lr_up`` + ``psv`` (N, D, 3, H, W), or ``lr`` (N, 3, H/8, W/8) + ``ref``
(N, 3, H, W) + ``pose`` (N, 4, 4, target camera -> reference camera) + ``k_tgt`` (N, 3, 3) [+ ``k_ref``], from
which the method makes LR-up (PIL bicubic x8 on uint8) and the PSV (``min_depth``/``max_depth`` of
``method.args``, official 1 and 100) on the training device. :class:`RealEstatePairs` makes such samples
from RealEstate10K camera files and frames as the official loader does; pass it (or any dataset of such
dicts) as ``Trainer(cfg, train_set=...)``.

Validation runs on the engine's plain LR/HR pairs, which have no second view: :meth:`CrossMPIMethod.infer`
uses LR-up itself as every PSV plane (then ``hr_syn`` is LR-up), a self-reference sanity check, not the
paper's protocol.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..archs import plane_sweep as ps
from ..archs.crossmpi import STAGES, official_pil_downsample, upsample_lr
from ..errors import CheckpointError, ConfigError, SrkitError
from .base import Method, build_network

DEFAULTS: dict[str, Any] = {
    "stage": "full",
    "vgg_weights": None,
    "min_depth": ps.OFFICIAL_MIN_DEPTH,
    "max_depth": ps.OFFICIAL_MAX_DEPTH,
}

IMAGENET_MEAN_255 = (123.68, 116.779, 103.939)

# --- losses --------------------------------------------------------------------------------------------------

# (layer, divisor) of the official normalised VGG loss; conv5_2's "* 10 / 1.5" is a divisor of 0.15.
VGG_TERMS = (("conv1_2", 2.6), ("conv2_2", 4.8), ("conv3_2", 3.7), ("conv4_2", 5.6), ("conv5_2", 0.15))
_VGG_CONVS = ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3", "conv3_4",
              "conv4_1", "conv4_2", "conv4_3", "conv4_4", "conv5_1", "conv5_2")
# Index of each conv in the layer list of MatConvNet's imagenet-vgg-verydeep-19 (relu/pool layers between).
_MATCONVNET_INDEX = dict(zip(_VGG_CONVS, (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30)))
_WIDTHS = {"1": 64, "2": 128, "3": 256, "4": 512, "5": 512}


class LossVGG19(nn.Module):
    """VGG19 up to ``conv5_2`` as the official loss builds it: 3x3 convs with ReLU (features are post-ReLU),
    2x2 **average** pooling (TF "SAME": a window over the edge averages only the pixels inside), input RGB
    in 0..255 minus the ImageNet mean. ``forward`` returns the activations of :data:`VGG_TERMS`' layers.
    Keys ``conv1_1.weight`` ... ``conv5_2.bias`` (OIHW)."""

    def __init__(self) -> None:
        super().__init__()
        cin = 3
        for name in _VGG_CONVS:
            cout = _WIDTHS[name[4]]
            self.add_module(name, nn.Conv2d(cin, cout, 3, padding=1))
            cin = cout
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN_255).reshape(1, 3, 1, 1), persistent=False)

    def forward(self, x255: torch.Tensor) -> dict[str, torch.Tensor]:
        wanted = {name for name, _ in VGG_TERMS}
        out: dict[str, torch.Tensor] = {}
        x = x255 - self.mean
        block = "1"
        for name in _VGG_CONVS:
            if name[4] != block:
                x = F.avg_pool2d(x, 2, 2, ceil_mode=True)
                block = name[4]
            x = F.relu(getattr(self, name)(x))
            if name in wanted:
                out[name] = x
        return out


def load_loss_vgg(path: str | Path) -> LossVGG19:
    """:class:`LossVGG19` with weights from MatConvNet's ``imagenet-vgg-verydeep-19.mat`` (read with scipy, the
    layout the official code reads: ``layers[i].weights = {HWIO kernel, bias}``) or from a ``.pth`` /
    ``.safetensors`` state_dict with :class:`LossVGG19`'s own keys."""
    path = Path(path)
    if not path.is_file():
        raise SrkitError(f"VGG19 weights file not found: {path}")
    net = LossVGG19()
    if path.suffix.lower() == ".mat":
        import scipy.io

        try:
            layers = scipy.io.loadmat(str(path))["layers"][0]
            state = {}
            for name, i in _MATCONVNET_INDEX.items():
                kernel, bias = layers[i][0][0]["weights"][0]
                state[f"{name}.weight"] = torch.from_numpy(kernel.astype("float32")).permute(3, 2, 0, 1).contiguous()
                state[f"{name}.bias"] = torch.from_numpy(bias.astype("float32").reshape(-1))
        except (KeyError, IndexError, ValueError, TypeError) as e:
            raise CheckpointError(f"{path} is not MatConvNet's imagenet-vgg-verydeep-19 layout "
                                  f"({type(e).__name__}: {e})") from None
    else:
        from ..archs.vgg import load_state_dict_file

        state = load_state_dict_file(path)
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    bad = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in own.items()
           if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or bad:
        raise CheckpointError(f"{path} does not fit the loss VGG19: missing {missing[:4]}, shapes {bad[:3]}")
    net.load_state_dict({k: state[k].float() for k in own})
    return net


def lowres_l2_loss(init_syn: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """Stage 1: ``tf.nn.l2_loss`` of ``init_syn`` against HR/4, both in the official [-1, 1] range:
    ``sum((a - b)^2) / 2`` over the batch (not a mean). Inputs in [0, 1]."""
    target = official_pil_downsample(hr * 2.0 - 1.0)
    return ((init_syn * 2.0 - 1.0) - target).pow(2).sum() / 2.0


def vgg_lowres_l1_loss(out: torch.Tensor, hr: torch.Tensor, init_syn: torch.Tensor,
                       vgg: nn.Module | None) -> dict[str, torch.Tensor]:
    """Stages 2 and 3: the official ``vgg_lowresL1`` terms and ``total`` (images in [0, 1]; ``out`` is
    ``hr_syn`` or the SR output). ``vgg`` None leaves out p1..p5 (for tests only; not the official loss)."""
    o255, t255 = out * 255.0, hr * 255.0
    terms = {"p0": (o255 - t255).abs().mean()}
    if vgg is not None:
        fo, ft = vgg(o255), vgg(t255)
        for i, (name, div) in enumerate(VGG_TERMS, start=1):
            terms[f"p{i}"] = (fo[name] - ft[name]).abs().mean() / div
    low = (official_pil_downsample(hr * 2.0 - 1.0) + 1.0) / 2.0 * 255.0
    terms["p_lowres"] = (init_syn * 255.0 - low).abs().mean()
    total = 2.0 * terms["p0"] + 0.01 * terms["p_lowres"]
    for i in range(1, 6):
        if f"p{i}" in terms:
            total = total + terms[f"p{i}"]
    terms["total"] = total
    return terms


# --- RealEstate10K pairs -------------------------------------------------------------------------------------


def area_resize_matrix(in_len: int, out_len: int) -> torch.Tensor:
    """(out_len, in_len) float64 matrix of TF1's ``resize_area`` along one axis: output pixel i averages
    the input interval ``[i s, (i + 1) s)``, ``s = in_len / out_len``, each input pixel weighted by its
    overlap with it."""
    s = in_len / out_len
    m = torch.zeros(out_len, in_len, dtype=torch.float64)
    for i in range(out_len):
        lo, hi = i * s, (i + 1) * s
        for j in range(int(lo), min(int(-(-hi // 1)), in_len)):
            m[i, j] = max(0.0, min(hi, j + 1) - max(lo, j)) / s
    return m


def area_resize(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(..., H, W) float images resized to ``size`` = (h, w) as ``tf.image.resize_area`` (float64 inside)."""
    my = area_resize_matrix(img.shape[-2], size[0])
    mx = area_resize_matrix(img.shape[-1], size[1])
    return (my @ img.double() @ mx.t()).to(img.dtype)


def read_camera_file(path: str | Path) -> tuple[str, list[str], torch.Tensor, torch.Tensor]:
    """A RealEstate10K camera file: (video id, timestamps, normalised intrinsics (N, 4) = fx fy cx cy,
    world-to-camera poses (N, 3, 4)). Lines starting with '#' are skipped; the first line is the video URL,
    whose id follows the '='; each further line is ``timestamp fx fy cx cy k1 k2`` and the 12 pose values
    row by row. Non-zero distortion (k1, k2) is an error, as officially."""
    lines = [ln for ln in Path(path).read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    if len(lines) < 2:
        raise SrkitError(f"{path}: not a RealEstate10K camera file (fewer than two lines)")
    video = lines[0].strip().split("=")[-1]
    stamps, intr, poses = [], [], []
    for k, line in enumerate(lines[1:], start=2):
        f = line.split()
        if len(f) != 19:
            raise SrkitError(f"{path}: line {k} has {len(f)} fields, a camera line has 19")
        vals = [float(v) for v in f[1:]]
        if vals[4] != 0.0 or vals[5] != 0.0:
            raise SrkitError(f"{path}: line {k} has lens distortion (k1, k2 = {vals[4]}, {vals[5]}), not supported")
        stamps.append(f[0])
        intr.append(vals[:4])
        poses.append(vals[6:])
    return video, stamps, torch.tensor(intr, dtype=torch.float64), torch.tensor(poses, dtype=torch.float64).reshape(-1, 3, 4)


class RealEstatePairs(torch.utils.data.Dataset):
    """Cross-MPI training/test samples from RealEstate10K camera files and frames, as the official loader.

    ``cameras_glob`` matches camera files (``train/*.txt``); frames are ``image_dir/<id>/<id>_<timestamp>.jpg``
    (the official layout). One item per camera file with at least ``stride + 1`` frames. Item ``i`` of epoch
    ``e`` draws from ``numpy.random.default_rng([seed, e, i])``.

    Training (``training=True``): a random pair of frames ``stride`` apart (official 23), reversed with
    probability 0.5 (so either frame is the LR target), both frames resized to (height, width) (official
    384 x 768) with TF's area resampling, then scaled by independent factors in [min_scale, max_scale)
    per axis (official 1.0 to 1.15, area resampling again) and cropped at a random offset back to (height,
    width), with the intrinsics adjusted. Testing: the central pair, not reversed (the official reversal
    by a hash of the video id is not reproduced).

    Items: ``hr`` (3, H, W) target frame; ``lr`` (3, H/8, W/8), the target quantised by truncation and shrunk
    with PIL bicubic on uint8 (:func:`srkit.archs.crossmpi.downsample_hr`); ``ref`` (3, H, W) the other frame;
    ``pose`` (4, 4) target camera -> reference camera; ``k_tgt`` (3, 3) pixel intrinsics of the target
    (the official code uses them for the reference too). Float32, images in [0, 1].
    """

    def __init__(self, cameras_glob: str, image_dir: str | Path, height: int = 384, width: int = 768,
                 stride: int = 23, scale: int = 8, min_scale: float = 1.0, max_scale: float = 1.15,
                 training: bool = True, seed: int = 0) -> None:
        import glob

        files = sorted(glob.glob(cameras_glob))
        if not files:
            raise SrkitError(f"no camera files match {cameras_glob}")
        self.sequences = [read_camera_file(f) for f in files]
        self.sequences = [s for s in self.sequences if len(s[1]) >= stride + 1]
        if not self.sequences:
            raise SrkitError(f"no camera file of {cameras_glob} has {stride + 1} frames or more")
        self.image_dir = Path(image_dir)
        self.height, self.width, self.stride, self.scale = height, width, stride, scale
        self.min_scale, self.max_scale = min_scale, max_scale
        self.training, self.seed, self.epoch = training, seed, 0

    def __len__(self) -> int:
        return len(self.sequences)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _frame(self, video: str, stamp: str) -> torch.Tensor:
        import numpy as np

        from ..data.io import read_image

        a = read_image(self.image_dir / video / f"{video}_{stamp}.jpg")
        if a.dtype != np.uint8:
            a = np.rint(a / 257.0).astype(np.uint8)
        # TF's convert_image_dtype: uint8 -> float32 times 1/255
        img = torch.from_numpy(np.array(a, dtype=np.float32)).permute(2, 0, 1) * np.float32(1.0 / 255.0)
        return area_resize(img, (self.height, self.width))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        import numpy as np

        from ..archs.crossmpi import downsample_hr

        video, stamps, intr, poses = self.sequences[index]
        n = len(stamps)
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        if self.training:
            start = int(rng.integers(0, n - self.stride))
            order = [start, start + self.stride]
            if rng.random() < 0.5:
                order.reverse()
        else:
            start = (n - self.stride - 1) // 2
            order = [start, start + self.stride]
        tgt, other = order
        frames = [self._frame(video, stamps[tgt]), self._frame(video, stamps[other])]
        norm = intr[tgt].clone()
        h, w = self.height, self.width
        if self.training and (self.min_scale != 1.0 or self.max_scale != 1.0):
            fy, fx = rng.uniform(self.min_scale, self.max_scale, size=2)
            sh, sw = int(np.float32(h) * np.float32(fy)), int(np.float32(w) * np.float32(fx))
            oy, ox = int(rng.integers(0, sh - h + 1)), int(rng.integers(0, sw - w + 1))
            frames = [area_resize(f, (sh, sw))[:, oy:oy + h, ox:ox + w] for f in frames]
            # normalised intrinsics -> pixels of the scaled image, shifted by the crop, normalised again
            px = norm * torch.tensor([sw, sh, sw, sh], dtype=torch.float64) - torch.tensor([0.0, 0.0, ox, oy],
                                                                                            dtype=torch.float64)
            norm = px / torch.tensor([w, h, w, h], dtype=torch.float64)
        k = torch.tensor([[norm[0] * w, 0.0, norm[2] * w], [0.0, norm[1] * h, norm[3] * h], [0.0, 0.0, 1.0]])
        hr = frames[0].float()
        return {"hr": hr, "lr": downsample_hr(hr[None], self.scale)[0], "ref": frames[1].float(),
                "pose": ps.relative_pose(poses[tgt], poses[other]).float(), "k_tgt": k.float()}


# --- method --------------------------------------------------------------------------------------------------


class CrossMPIMethod(Method):
    """The three official Cross-MPI stages (``method.args.stage``: lowres, hr_syn, full)."""

    def build(self) -> None:
        unknown = set(self.cfg.method.args) - set(DEFAULTS)
        if unknown:
            raise ConfigError(f"method 'crossmpi': unknown method.args {sorted(unknown)}; known: {sorted(DEFAULTS)}")
        self.args = {**DEFAULTS, **self.cfg.method.args}
        if self.args["stage"] not in STAGES:
            raise ConfigError(f"method 'crossmpi': method.args.stage must be one of {', '.join(STAGES)}, "
                              f"not {self.args['stage']!r}")
        if self.cfg.data.scale != 8:
            raise ConfigError(f"method 'crossmpi' trains x8 only, not data.scale={self.cfg.data.scale}")
        from ..engine.config import TrainConfig

        if self.cfg.train.losses != TrainConfig().losses:
            raise ConfigError("method 'crossmpi' fixes its loss by method.args.stage (the official L2 on init_syn, "
                              "or vgg_lowresL1); leave train.losses out")
        if self.cfg.train.gan.weight > 0:
            raise ConfigError("method 'crossmpi' has no adversarial phase; set train.gan.weight to 0")
        net, self.descriptor = build_network(self.cfg.model.arch, self.arch_kwargs())
        if not hasattr(net, "run_stage"):
            raise ConfigError(f"method 'crossmpi' trains the crossmpi network, not {self.cfg.model.arch!r}")
        self.networks["net"] = net.to(self.device)
        self.vgg: nn.Module | None = None
        if self.args["stage"] != "lowres":
            if not self.args["vgg_weights"]:
                raise ConfigError("method 'crossmpi' stages hr_syn and full need method.args.vgg_weights "
                                  "(MatConvNet imagenet-vgg-verydeep-19.mat, as the official loss)")
            self.vgg = load_loss_vgg(self.args["vgg_weights"]).to(self.device).eval().requires_grad_(False)
        self.depths = ps.inverse_depths(float(self.args["min_depth"]), float(self.args["max_depth"]),
                                        net.num_planes)

    def arch_kwargs(self) -> dict[str, Any]:
        return dict(self.cfg.model.args)  # the scale is fixed (8)

    def inputs(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """(LR-up, PSV) of a batch: given, or made from ``lr``, ``ref``, ``pose``, ``k_tgt`` [, ``k_ref``]."""
        hr = batch["hr"]
        lr_up = batch.get("lr_up")
        if lr_up is None:
            if "lr" not in batch:
                raise SrkitError("Cross-MPI batches need 'lr_up' or 'lr' next to 'hr'")
            lr_up = upsample_lr(batch["lr"], 8)
        psv = batch.get("psv")
        if psv is None:
            missing = [k for k in ("ref", "pose", "k_tgt") if k not in batch]
            if missing:
                raise SrkitError(f"Cross-MPI batches need 'psv', or 'ref', 'pose' and 'k_tgt' to build it; "
                                 f"missing {missing}")
            psv = ps.plane_sweep_volume(batch["ref"], self.depths, batch["pose"], batch["k_tgt"],
                                        batch.get("k_ref"), out_size=tuple(hr.shape[-2:]))
        return lr_up, psv

    def training_step(self, batch: dict[str, Any], step: int, update: str) -> dict[str, torch.Tensor]:
        if update != "net":
            raise KeyError(update)
        stage = self.args["stage"]
        lr_up, psv = self.inputs(batch)
        out = self.run("net", lr_up, psv, stage)
        hr = batch["hr"]
        if stage == "lowres":
            loss = lowres_l2_loss(out.init_syn.float(), hr)
            return {"total": loss, "l2": loss.detach()}
        result = out.sr if stage == "full" else out.hr_syn
        terms = vgg_lowres_l1_loss(result.float(), hr, out.init_syn.float(), self.vgg)
        return {k: (v if k == "total" else v.detach()) for k, v in terms.items()}

    @torch.no_grad()
    def infer(self, net: nn.Module, lr: torch.Tensor) -> torch.Tensor:
        """Validation without a second view: LR-up serves as every PSV plane (a sanity check only)."""
        lr_up = upsample_lr(lr, 8)
        psv = lr_up[:, None].expand(-1, net.num_planes, -1, -1, -1)
        return net(lr_up, psv).sr


__all__ = ["CrossMPIMethod", "LossVGG19", "RealEstatePairs", "VGG_TERMS", "area_resize", "load_loss_vgg",
           "lowres_l2_loss", "read_camera_file", "vgg_lowres_l1_loss"]
