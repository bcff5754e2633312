"""The official Cross-MPI checkpoint (TensorFlow 1, Mayzazhou/Cross-MPI, final model
``guided_nnup_denseASPP_lowres_image_psv_lowresL1``) -> srkit's :class:`srkit.archs.crossmpi.CrossMPI`.

srkit cannot read TensorFlow checkpoints (TensorFlow is not a dependency), so the variables are first dumped
to an ``.npz`` file, keyed by their TF-slim names, in an environment that has TensorFlow 1.x (or 2.x, the
reader API is the same)::

    import numpy as np, tensorflow as tf
    ckpt = tf.train.latest_checkpoint("path/to/checkpoint_dir")   # or the "model.latest-NNN" prefix itself
    reader = tf.train.load_checkpoint(ckpt)
    scopes = ("f_extract_net/", "net/", "fuse_part/")
    names = [n for n in reader.get_variable_to_shape_map() if n.startswith(scopes)]
    np.savez("crossmpi_official.npz", **{n: reader.get_tensor(n) for n in names})

then ``python -m srkit.convert.crossmpi crossmpi_official.npz -o crossmpi.safetensors`` (or, once the shared
checkpoint reader dispatches ``.npz`` files to :func:`read_npz`,
``srkit convert crossmpi_official.npz --arch crossmpi -o crossmpi.safetensors``).

The mapping is a table: the srkit key is the TF name with ``/`` -> ``.``, ``weights`` -> ``weight``,
``biases`` -> ``bias`` (:func:`srkit.archs.crossmpi.tf_name` is its inverse); conv kernels are transposed
from TF's HWIO to PyTorch's OIHW. The check is strict: a variable the network does not have, a variable
missing from the file, or a shape that does not fit is a :class:`CheckpointError` that names it. Only the
trainer's bookkeeping (``global_step``, Adam slots ``*/Adam``, ``*/Adam_1``, ``beta1_power``,
``beta2_power``), which a dump without the scope filter above would contain, is dropped, with a note.
The widths and the number of planes are read from the tensors.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, SrkitError
from .common import Conversion, Converted, StateDict, require, resolve_kwargs

_BOOKKEEPING = ("global_step", "beta1_power", "beta2_power")


def _is_bookkeeping(name: str) -> bool:
    return name in _BOOKKEEPING or name.endswith(("/Adam", "/Adam_1"))


def read_npz(path: str | os.PathLike[str]) -> StateDict:
    """``{name: tensor}`` from a NumPy ``.npz`` file (no pickled objects allowed)."""
    import numpy as np
    import torch

    path = Path(path)
    if not path.is_file():
        raise SrkitError(f"checkpoint {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: torch.from_numpy(np.array(data[k])) for k in data.files}
    except (ValueError, OSError, EOFError) as e:
        raise CheckpointError(f"{path} is not a readable .npz file of arrays: {e}") from None


def _list(items: list[str]) -> str:
    return ", ".join(items[:6]) + (f", ... ({len(items)} in all)" if len(items) > 6 else "")


def convert_crossmpi(state: StateDict, scale: int | None, overrides: dict[str, Any]) -> Conversion:
    """``srkit convert --arch crossmpi``: TF-slim variables (HWIO) of the official checkpoint -> CrossMPI."""
    import torch

    from ..archs.crossmpi import SCALE, tf_variable_shapes

    if scale is not None and scale != SCALE:
        raise CheckpointError(f"Cross-MPI checkpoints upscale by {SCALE}, not by {scale}")
    # A dump through tf.global_variables() names tensors "scope/weights:0"; the reader API has no ":0".
    state = {(k[:-2] if k.endswith(":0") else k): v for k, v in state.items()}
    dropped = sorted(k for k in state if _is_bookkeeping(k))
    state = {k: v for k, v in state.items() if k not in dropped}

    inferred = {
        "num_planes": int(require(state, "net/attention_out/biases", "crossmpi").shape[0]),
        "feat_ch": int(require(state, "f_extract_net/conv_in/biases", "crossmpi").shape[0]),
        "att_ch": int(require(state, "net/attention_out_0/biases", "crossmpi").shape[0]),
        "fuse_ch": int(require(state, "fuse_part/in_f_lr/biases", "crossmpi").shape[0]),
    }
    kwargs = resolve_kwargs("crossmpi", inferred, {}, None, overrides)
    expected = tf_variable_shapes(**kwargs)

    unknown = [k for k in state if k not in expected]
    missing = [k for k in expected if k not in state]
    mismatched = [f"{k} (file {tuple(state[k].shape)}, expected {expected[k]})"
                  for k in expected if k in state and tuple(state[k].shape) != expected[k]]
    if unknown or missing or mismatched:
        parts = [f"{label}: {_list(items)}" for label, items in
                 (("unknown variables", unknown), ("missing variables", missing), ("shape mismatches", mismatched))
                 if items]
        raise CheckpointError("the Cross-MPI variables do not fit the official network "
                              f"({', '.join(f'{k}={v}' for k, v in kwargs.items())}): " + "; ".join(parts))

    out: StateDict = {}
    for tf_key, t in state.items():
        scope, _, leaf = tf_key.rpartition("/")
        key = scope.replace("/", ".") + (".weight" if leaf == "weights" else ".bias")
        t = torch.as_tensor(t).float()
        out[key] = t.permute(3, 2, 0, 1).contiguous() if t.dim() == 4 else t.contiguous()
    notes = [f"{len(out)} TF-slim variables mapped by name, conv kernels HWIO -> OIHW",
             f"inferred num_planes={kwargs['num_planes']}, feat_ch={kwargs['feat_ch']}, att_ch={kwargs['att_ch']}, "
             f"fuse_ch={kwargs['fuse_ch']}"]
    if dropped:
        notes.append(f"dropped {len(dropped)} training bookkeeping variables ({_list(dropped)})")
    return Conversion("crossmpi", kwargs, out, notes)


def convert_npz(path: str | os.PathLike[str], overrides: dict[str, Any] | None = None) -> Converted:
    """Python-API twin of ``srkit convert FILE.npz --arch crossmpi``: read the dump, convert, build the
    network, load it strictly; returns the :class:`Converted` that :func:`srkit.model_file.save_model`
    writes (``conv.net``, ``conv.arch_kwargs``, ``conv.metadata()``, ``conv.descriptor``)."""
    from .. import archs
    from .common import build_net, load_strict, sha256_file

    path = Path(path)
    conv = convert_crossmpi(read_npz(path), None, dict(overrides or {}))
    net = build_net(conv.arch, conv.arch_kwargs)
    load_strict(net, conv.state_dict, source=str(path), arch=conv.arch)
    net.eval()
    source = {"file": path.name, "sha256": sha256_file(path), "converted_by": "srkit convert", "notes": conv.notes}
    return Converted(net, conv.arch, conv.arch_kwargs, archs.describe(conv.arch, **conv.arch_kwargs), source,
                     conv.notes)


def main(argv: list[str] | None = None) -> int:
    """``python -m srkit.convert.crossmpi FILE.npz -o MODEL [--force]``: what ``srkit convert FILE.npz
    --arch crossmpi -o MODEL`` does, usable until the shared checkpoint reader accepts ``.npz`` files."""
    import argparse

    from ..errors import SrkitError as _Error
    from ..model_file import save_model

    p = argparse.ArgumentParser(prog="python -m srkit.convert.crossmpi",
                                description="official Cross-MPI variables dumped to .npz -> srkit model file")
    p.add_argument("file", metavar="FILE.npz")
    p.add_argument("-o", "--output", required=True, metavar="MODEL")
    p.add_argument("--force", action="store_true", help="replace MODEL if it exists")
    args = p.parse_args(argv)
    try:
        conv = convert_npz(args.file)
        path = save_model(args.output, conv.net, conv.arch, conv.arch_kwargs, conv.metadata(),
                          descriptor=conv.descriptor, overwrite=args.force)
    except _Error as e:
        print(f"error: {e}")
        return 1
    print(f"{args.file} -> {path}")
    for note in conv.notes:
        print(f"  note     {note}")
    return 0


__all__ = ["convert_crossmpi", "convert_npz", "main", "read_npz"]

if __name__ == "__main__":
    raise SystemExit(main())
