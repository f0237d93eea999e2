"""`tinylstm` entry point: one subcommand per module in this package.

Each command module exposes ``register(subparsers)`` which adds its parser and sets
``func`` to a callable taking the parsed namespace and returning an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import os
import select
import signal
import sys
from types import FrameType
from typing import Any, NoReturn

from tinylstm.errors import TinyLSTMError

COMMANDS = ["train", "search", "prune", "export", "check", "explain", "build", "flash", "stream", "parity"]


class Parser(argparse.ArgumentParser):
    """argparse's parser with a usage error on one line, as every other bad input: the problem, then where the
    options are listed (argparse would print the whole usage block first). Subcommands' parsers are Parsers
    too (add_subparsers makes its parsers of the parent's class)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (`{self.prog} --help` lists the options)\n")

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:
        """As argparse's, but an option the command does not know is the command's error, pointing at its own
        --help (argparse reports leftovers from the top parser: `tinylstm: error: ...`)."""
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:
            command = getattr(parsed, "command", None)
            subparsers = [a for a in self._actions if isinstance(a, argparse._SubParsersAction)]
            owner = subparsers[0].choices.get(command, self) if subparsers and command else self
            owner.error(f"unrecognized arguments: {' '.join(extra)}")
        return parsed


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="tinylstm",
        description="Train, quantize and deploy small LSTM/GRU models with bit-exact host parity.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"tinylstm.host.cli.cmd_{name}").register(sub)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM: unwinds like Ctrl-C, so logs are flushed and summaries printed on the way out."""


def _stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (POLLERR on its write end); not a board's socket."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), 0)  # POLLERR and POLLHUP are reported whatever is asked
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):  # no file descriptor (a captured stdout, or none)
        return False


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    code = 0
    try:
        code = _run(argv)
        if sys.stdout is not None:  # None: started with stdout closed
            sys.stdout.flush()  # a reader that has gone is found here, not by the interpreter's flush at exit
        return code
    except BrokenPipeError:
        if not _stdout_closed():
            raise
        # the reader of our output went away (`tinylstm stream ... | head`): a normal end, as for any Unix
        # filter stopped by SIGPIPE; what is still buffered goes nowhere instead of failing at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return code or 128 + signal.SIGPIPE  # an error's own exit code (2, 130, 143) is kept


def _run(argv: list[str] | None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), printed by the parser
        return int(exc.code or 0)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return int(args.func(args) or 0)
    except TinyLSTMError as exc:
        print(f"tinylstm {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Terminated:
        print(f"tinylstm {args.command}: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print(f"tinylstm {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
