"""`tinylstm stream`: print (and log) a board's predictions with live loss counters."""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import closing

from tinylstm.api import SOURCES, Stream, stream
from tinylstm.host.cli.options import add_moved_data
from tinylstm.host.link.drift import DriftEvent
from tinylstm.host.link.protocol import MODE_NAMES, Source
from tinylstm.host.link.stream import StreamCounters
from tinylstm.host.link.transport import DEFAULT_BAUD


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "stream",
        help="stream predictions from a board",
        description="Read PRED frames, print them with the model's units and class names, and show "
        "live counters of missing steps, dropped and corrupt frames, resets, reconnects.",
    )
    p.add_argument("--port", required=True, help="serial port or URL (/dev/ttyUSB0, socket://127.0.0.1:4444)")
    p.add_argument(
        "--export", help="export directory: real values, class names, and the model hash is checked"
    )
    p.add_argument("--baud", type=int, default=DEFAULT_BAUD)
    p.add_argument("--source", choices=SOURCES, help="switch the board's input source first")
    p.add_argument(
        "--feed",
        choices=["held-out"],
        help="send the export's held-out data as INPUT frames (INPUT_S16 for int16-h)",
    )
    add_moved_data(p, "with --feed held-out")
    p.add_argument("--count", type=int, help="stop after this many predictions")
    p.add_argument("--log", help="also write every prediction to this .csv or .jsonl file")
    p.add_argument("--quiet", action="store_true", help="only the live counters, no line per prediction")
    p.add_argument(
        "--no-drift",
        action="store_true",
        help="no drift alerts (by default, with --export, live predictions and fed inputs are compared "
        "with the export's held-out statistics)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    def status(c: StreamCounters) -> None:
        drift = f"; {session.drift.status()}" if session.drift is not None else ""
        print("# " + c.summary(time.monotonic() - start) + drift, file=sys.stderr, flush=True)

    def on_drift(e: DriftEvent) -> None:
        print(
            f"# drift {e.state} at prediction {e.prediction}: {e.kind}: {e.message}",
            file=sys.stderr,
            flush=True,
        )

    session: Stream = stream(
        args.port,
        export=args.export,
        baud=args.baud,
        source=args.source,
        feed=args.feed,
        count=args.count,
        log=args.log,
        drift=not args.no_drift,
        data=args.data,
        test_data=args.test_data,
        on_drift=on_drift if args.export and not args.no_drift else None,
    )
    start = time.monotonic()
    with session as s:
        h = s.hello
        print(
            f"# board {h.board_name}, model 0x{h.model_hash:08x}, {h.cell.name} "
            f"{h.input_size}x{h.hidden_size}"
            f"x{h.output_size} (int{h.hidden_bits} h, int{h.input_bits} input), {MODE_NAMES[h.mode]} mode, "
            f"window {h.window}, "
            f"source {h.source.name.lower()}"
        )
        if h.source == Source.HOST and args.feed is None and args.source in (None, "host"):
            print(  # it would print 0 predictions a second, for ever, without saying why
                "# the board takes its samples from the host and nothing sends them: add --feed held-out "
                "(with --export), or switch it to its own samples (--source replay or sensor)",
                file=sys.stderr,
                flush=True,
            )
        predictions = s.predictions(on_status=status)  # switches the source, opens the log
        try:
            with closing(predictions):  # closed on the way out, so the log is flushed before the summary
                for p in predictions:
                    if not args.quiet and p.answer:  # a bidirectional model answers once per window
                        vals = (
                            " ".join(f"{v:+.3f}" for v in p.values) if p.values else " ".join(map(str, p.raw))
                        )
                        print(f"{p.session}:{p.step:6d} {p.label or ''} {vals}")
        finally:
            c = s.live_counters()
            print("# " + c.summary(time.monotonic() - start), file=sys.stderr)
            if s.drift is not None:
                print(f"# {s.drift.status()}; {len(s.drift.events)} drift events", file=sys.stderr)
            for n, sess in enumerate(c.sessions):
                steps = f"steps {sess.first_step}..{sess.last_step}" if sess.received else "no steps"
                print(
                    f"# session {n} ({sess.source}): {steps}, {sess.received} received, "
                    f"{sess.steps_missing} missing, ended: {sess.ended}",
                    file=sys.stderr,
                )
    return 0
