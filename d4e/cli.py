"""The ``d4e`` command line: one entry point, one subcommand per user task.

Subcommands live in :mod:`d4e.commands`, one module each, and are discovered
automatically. A command module defines:

* ``NAME`` (str) and ``HELP`` (one line),
* ``add_arguments(parser)``,
* ``main(args) -> int | None``.

Command modules must keep heavy imports (torch, mediapipe, av) inside
``main`` so that ``d4e --help`` stays instant. Only the CLI wires the
pipeline's stages together.

Errors a user can cause raise :class:`d4e.errors.D4EError`; they are printed
as one line (``d4e: error: ...``) with exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys

import d4e
from d4e.errors import D4EError


def _command_modules():
    import d4e.commands as pkg

    mods = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        mods.append(importlib.import_module(f"d4e.commands.{info.name}"))
    return mods


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="d4e",
        description="D4E: visual dubbing for everyone. Re-renders an actor's mouth to match new audio.",
    )
    parser.add_argument("--version", action="version", version=f"d4e {d4e.__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="more log output (and tracebacks on errors)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _command_modules():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP))
        mod.add_arguments(p)
        p.set_defaults(_main=mod.main)
    return parser


def entrypoint(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s" if args.verbose else "%(message)s",
        stream=sys.stderr,
    )
    if not getattr(args, "_main", None):
        parser.print_help()
        return 2
    try:
        rc = args._main(args)
        return int(rc or 0)
    except D4EError as exc:
        if args.verbose:
            raise
        print(f"d4e: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("d4e: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # e.g. disk full surfacing outside our own writers
        if args.verbose:
            raise
        import errno

        if exc.errno == errno.ENOSPC:
            print("d4e: error: disk full", file=sys.stderr)
            return 2
        raise


def main() -> None:  # console script
    sys.exit(entrypoint())


if __name__ == "__main__":
    main()
