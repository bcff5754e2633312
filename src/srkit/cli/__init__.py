"""The ``srkit`` command line. Each sub-command lives in its own module with ``register`` and ``run``;
heavy imports (torch, models) happen inside ``run`` so that ``srkit --help`` is instant."""

from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import SrkitError

# sub-command -> module under srkit.cli; order is the order shown in --help
COMMANDS = ["upscale", "eval", "train", "convert", "profile", "models", "explain", "serve", "classsr_prepare"]


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="srkit", description="Super-resolution toolkit.")
    parser.add_argument("--version", action="version", version=f"srkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"srkit.cli.{name}")
        except ModuleNotFoundError as e:  # a command not written yet is simply absent
            if e.name == f"srkit.cli.{name}":
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        result = args.run(args)
    except SrkitError as e:
        print(f"srkit: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("srkit: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
