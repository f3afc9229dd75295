"""The ``bertctr`` command line, one module per group of commands (see :mod:`.main`)."""

from bertctr.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
