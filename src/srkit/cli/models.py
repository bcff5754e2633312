"""``srkit models``: the model zoo (with what each file's metadata says) and the available architectures."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list the model zoo and the architectures",
        description="List the zoo models (name, architecture, scales, parameters, recorded metrics) and the "
        "architectures that `srkit convert --arch` and `srkit profile --model arch:NAME` accept.",
    )
    p.add_argument("--json", metavar="FILE", help="also write the listing as JSON")
    p.set_defaults(run=run)


def format_metrics(metrics: Any, limit: int = 60) -> str:
    """``{"Set5": {"psnr_y": 32.1}}`` -> ``"Set5 psnr_y 32.1"``; a short one-line summary."""
    if not metrics:
        return "-"
    parts = []
    if isinstance(metrics, dict):
        for key, value in metrics.items():
            if isinstance(value, dict):
                inner = " ".join(f"{k} {v:.4g}" if isinstance(v, (int, float)) else f"{k} {v}" for k, v in value.items())
                parts.append(f"{key} {inner}")
            else:
                parts.append(f"{key} {value:.4g}" if isinstance(value, (int, float)) else f"{key} {value}")
    else:
        parts.append(str(metrics))
    text = "; ".join(parts)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _scales(desc: dict[str, Any] | Any) -> str:
    scales = desc.get("scales") if isinstance(desc, dict) else desc.scales
    scale_range = desc.get("scale_range") if isinstance(desc, dict) else desc.scale_range
    if scale_range:
        return f"x{scale_range[0]:g}-x{scale_range[1]:g}"
    return ",".join(f"x{s}" for s in scales or []) or "-"


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from .. import archs, zoo
    from ..errors import SrkitError
    from ..model_file import count_params, read_metadata
    from ..profile import format_count

    zoo_rows = []
    for name in zoo.list_models():
        path = zoo.resolve(name)
        try:
            doc = read_metadata(path)
            row = {
                "name": name,
                "arch": doc["arch"],
                "scales": _scales(doc.get("descriptor") or {"scales": doc.get("scales")}),
                "params": count_params(path),
                "metrics": doc.get("metrics"),
                "path": str(path),
            }
        except SrkitError as e:  # one bad file must not hide the others
            row = {"name": name, "arch": "?", "scales": "?", "params": None, "metrics": None, "path": str(path),
                   "error": str(e)}
        zoo_rows.append(row)

    arch_rows = []
    for name in archs.names():
        try:
            scales = _scales(archs.describe(name))
        except SrkitError:
            scales = "?"
        arch_rows.append({"name": name, "scales": scales})

    print("Model zoo:")
    if not zoo_rows:
        print(f"  (none installed; add model files to a directory in ${zoo.ENV_PATH})")
    else:
        print(f"  {'name':<22} {'arch':<14} {'scales':<10} {'params':>8}  metrics")
        for r in zoo_rows:
            params = format_count(r["params"]) if r["params"] is not None else "?"
            tail = f"error: {r['error']}" if "error" in r else format_metrics(r["metrics"])
            print(f"  {r['name']:<22} {r['arch']:<14} {r['scales']:<10} {params:>8}  {tail}")
    print()
    print("Architectures (srkit convert --arch NAME, srkit profile --model arch:NAME):")
    for r in arch_rows:
        print(f"  {r['name']:<22} default {r['scales']}")
    if args.json:
        path = Path(args.json)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({"zoo": zoo_rows, "architectures": arch_rows}, indent=2) + "\n")
        tmp.replace(path)
    return 0
