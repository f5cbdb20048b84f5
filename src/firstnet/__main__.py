"""Lets `python -m firstnet` work like the `firstnet` command."""

from firstnet.cli import main

raise SystemExit(main())
