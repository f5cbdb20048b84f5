"""Lets `python -m firstnet` work like the `firstnet` command."""

from firstnet.cli import run

run()
