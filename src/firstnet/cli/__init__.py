"""The `firstnet` command: a thin shell over the library, one module per subcommand, each registered the same way.

Each subcommand module has HELP (its line in `firstnet --help`), `add_flags(parser)` and `run(args)`, which returns
the exit code (None for 0). The library never imports this package.

Imports sit at the top of every module, with one exception: a subcommand imports the library inside its `run`.
The library imports Keras, JAX, NumPy and matplotlib, which take seconds to load, and `firstnet --help` or a
mistyped flag must answer at once; `firstnet train` must also start reading MNIST and hide Keras's optional
packages before Keras loads (startup.py). tests/test_startup.py measures both.
"""

import argparse
import difflib
import errno
import os
import re
import sys
import traceback

from firstnet import __version__
from firstnet.cli import (evaluate, explain, explore, fool, kit, look, predict, runs, scratch, serve, show, tensors,
                          train)
from firstnet.errors import UserError

# Every subcommand, in the order `firstnet --help` lists them.
COMMANDS = {"explore": explore, "show": show, "train": train, "evaluate": evaluate, "predict": predict, "runs": runs,
            "serve": serve, "scratch": scratch, "tensors": tensors, "look": look, "explain": explain, "fool": fool,
            "kit": kit}


class Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line (what is wrong, where to look) and exit code 2, without the usage dump."""

    def error(self, message):
        flags = [flag for action in self._actions for flag in action.option_strings]
        self.exit(2, f"{self.prog}: error: {message}{did_you_mean(message, flags)} (see `{self.prog} --help`)\n")


def did_you_mean(message, flags=()):
    """"; did you mean 'train'?" for argparse's "invalid choice: 'trian' (choose from ...)", and "; did you mean
    --epochs?" for "unrecognized arguments: --epocs" (Python 3.12's suggest_on_error, on every Python); else ""."""
    found = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)$", message)
    if found:
        offered = [choice.strip().strip("'") for choice in found.group(2).split(",")]
        close = difflib.get_close_matches(found.group(1), offered, n=1, cutoff=0.6)
        return f"; did you mean '{close[0]}'?" if close else ""
    found = re.search(r"unrecognized arguments: (.*)$", message)
    for given in found.group(1).split() if found else []:
        close = difflib.get_close_matches(given.split("=")[0], flags, n=1, cutoff=0.7) if given.startswith("--") else []
        if close:
            return f"; did you mean {close[0]}?"
    return ""


# The Keras backends a learner may choose with KERAS_BACKEND, each with the package it needs and how to get it.
BACKENDS = {"jax": ("jax", 'pip install -e .'), "torch": ("torch", 'pip install -e ".[torch]"'),
            "tensorflow": ("tensorflow", 'pip install -e ".[tensorflow]"')}


def check_backend():
    """A UserError when KERAS_BACKEND names no backend, or one whose package is missing: before Keras says it in
    a 58-line traceback."""
    import importlib.util

    chosen = os.environ.get("KERAS_BACKEND", "jax")
    if chosen not in BACKENDS:
        raise UserError(f"KERAS_BACKEND={chosen!r} is not a Keras backend firstnet runs on; set it to one of "
                        f"{', '.join(BACKENDS)} (or unset it for jax)")
    package, install = BACKENDS[chosen]
    if importlib.util.find_spec(package) is None:
        raise UserError(f"KERAS_BACKEND={chosen} needs {package}, which is not installed here: {install} "
                        "(or unset KERAS_BACKEND for jax)")


def build_parser():
    debug_help = "show the full traceback when something goes wrong"
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand must not reset to False the --debug given before it (`firstnet --debug show 9`).
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug_help)
    parser = Parser(prog="firstnet", description="Your first neural network: the Keras MNIST lesson, step by step.")
    parser.add_argument("--debug", action="store_true", help=debug_help)
    parser.add_argument("--version", action="version", version=f"firstnet {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, command in COMMANDS.items():
        subparser = commands.add_parser(name, parents=[common], help=command.HELP)
        command.add_flags(subparser)
        subparser.set_defaults(handler=command.run)
    return parser


def main(argv=None):
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # Said by the subcommand's own parser, which knows its flags and can suggest the one meant.
        chosen = parser._subparsers._group_actions[0].choices.get(getattr(args, "command", None)) or parser
        chosen.error(f"unrecognized arguments: {' '.join(unknown)}")
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    # Keras and its backends talk a lot on import; a learner should see the lesson, not log lines.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        if args.command not in ("runs", "kit"):
            check_backend()
        if os.environ.get("KERAS_BACKEND") == "tensorflow" and args.command != "runs":
            from firstnet.loops import speedups

            # Inside the try: a Ctrl-C while TensorFlow loads is a Ctrl-C like any other.
            speedups.import_keras_quietly()
        code = args.handler(args)
    except UserError as error:
        if args.debug:
            # The traceback for whoever debugs, and still the exit code of a user's mistake, so scripts see a 2.
            traceback.print_exc()
        print(f"firstnet {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nfirstnet {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # Before OSError, whose subclass it is.
        # Whoever read the output stopped early (`firstnet explore --index 0 | head`): stop quietly, as Unix
        # tools do, and keep Python from complaining again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as error:
        if error.errno not in (errno.EROFS, errno.EACCES, errno.EPERM) or args.debug:
            raise
        # A read-only or someone else's folder is the user's to change: one line naming the file, not a traceback.
        print(f"firstnet {args.command}: error: cannot write {error.filename or 'a file'} ({error.strerror}); run "
              "firstnet from a folder you can write to, or name another with --out / --run-dir / --root",
              file=sys.stderr)
        return 2
    return code or 0


def run():
    """The `firstnet` program (console script and `python -m firstnet`): `main()`, then a quick exit.

    Tearing down Keras, JAX and matplotlib at exit costs Python most of a second, only to free memory the system
    reclaims anyway. Every file firstnet writes is complete and synced before `main()` returns, so the output is
    flushed and the process leaves at once. Code that calls `main()` itself keeps the ordinary exit.
    """
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        code = code or 141
    os._exit(code)
