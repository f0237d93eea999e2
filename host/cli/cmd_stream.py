"""`tinylstm stream`: print (and log) a board's predictions with live loss counters."""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import IO

import numpy as np

from tinylstm.errors import TinyLSTMError
from tinylstm.host.drift import DEFAULT_DRIFT, DriftEvent
from tinylstm.host.heldout import load_held_out
from tinylstm.host.link import DEFAULT_BAUD
from tinylstm.host.protocol import Source
from tinylstm.host.stream import BoardStream, Prediction, StreamCounters


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
    p.add_argument(
        "--source", choices=["host", "replay", "sensor"], help="switch the board's input source first"
    )
    p.add_argument("--feed", choices=["held-out"], help="send the export's held-out data as INPUT frames")
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


def _feed(export: str | None) -> np.ndarray:
    if export is None:
        raise TinyLSTMError(
            "--feed held-out needs --export EXPORT_DIR (the held-out data comes from its source)"
        )
    held = load_held_out(Path(export))
    return np.concatenate(held.sequences)


def _check_log(path: Path) -> Path:
    if path.suffix not in (".csv", ".jsonl"):
        raise TinyLSTMError(f"--log {path}: use a .csv or .jsonl file name")
    if not path.parent.is_dir():
        raise TinyLSTMError(f"--log {path}: directory {path.parent} does not exist")
    return path


class _Log:
    def __init__(self, path: Path) -> None:
        self._file: IO[str] = path.open("w", newline="")
        self._csv = csv.writer(self._file) if path.suffix == ".csv" else None
        if self._csv:
            self._csv.writerow(["session", "step", "label", "raw", "values", "drift"])

    def write(self, p: Prediction) -> None:
        if self._csv:
            self._csv.writerow(
                [
                    p.session,
                    p.step,
                    p.label or "",
                    " ".join(map(str, p.raw)),
                    " ".join(f"{v:.6g}" for v in p.values or ()),
                    " ".join(p.drift),
                ]
            )
        else:
            self._file.write(
                json.dumps(
                    {
                        "session": p.session,
                        "step": p.step,
                        "label": p.label,
                        "raw": list(p.raw),
                        "values": list(p.values) if p.values else None,
                        "drift": list(p.drift),
                    }
                )
                + "\n"
            )

    def close(self) -> None:
        self._file.close()


def run(args: argparse.Namespace) -> int:
    if args.count is not None and args.count <= 0:
        raise TinyLSTMError("--count must be positive")
    feed = _feed(args.export) if args.feed else None
    log_path = _check_log(Path(args.log)) if args.log else None
    start = time.monotonic()

    stream: BoardStream | None = None

    def status(c: StreamCounters) -> None:
        drift = f"; {stream.drift.status()}" if stream is not None and stream.drift is not None else ""
        print("# " + c.summary(time.monotonic() - start) + drift, file=sys.stderr, flush=True)

    def on_drift(e: DriftEvent) -> None:
        print(
            f"# drift {e.state} at prediction {e.prediction}: {e.kind}: {e.message}",
            file=sys.stderr,
            flush=True,
        )

    export_dir = Path(args.export) if args.export else None
    drift = None if args.no_drift else DEFAULT_DRIFT
    with BoardStream(args.port, export_dir, args.baud, drift=drift, on_drift=on_drift) as s:
        stream = s
        if export_dir is not None and drift is not None and s.drift is None:
            print("# no drift alerts: this export has no drift reference (export it again)", file=sys.stderr)
        assert s.hello is not None
        h = s.hello
        print(
            f"# board {h.board_name}, model 0x{h.model_hash:08x}, {h.cell.name} "
            f"{h.input_size}x{h.hidden_size}"
            f"x{h.output_size} (int{h.hidden_bits} h), {h.mode.name.lower()} mode, window {h.window}, "
            f"source {h.source.name.lower()}"
        )
        if args.source or feed is not None:
            s.set_source(Source[(args.source or "host").upper()])
        log = _Log(log_path) if log_path else None
        try:
            for p in s.predictions(args.count, feed, on_status=status):
                if log:
                    log.write(p)
                if not args.quiet:
                    vals = " ".join(f"{v:+.3f}" for v in p.values) if p.values else " ".join(map(str, p.raw))
                    print(f"{p.session}:{p.step:6d} {p.label or ''} {vals}")
        finally:
            if log:
                log.close()
            c = s.live_counters()
            print("# " + c.summary(time.monotonic() - start), file=sys.stderr)
            if s.drift is not None:
                print(f"# {s.drift.status()}; {len(s.drift.events)} drift events", file=sys.stderr)
            for n, sess in enumerate(c.sessions):
                print(
                    f"# session {n} ({sess.source}): steps {sess.first_step}..{sess.last_step}, "
                    f"{sess.received} "
                    f"received, {sess.steps_missing} missing, ended: {sess.ended}",
                    file=sys.stderr,
                )
    return 0
