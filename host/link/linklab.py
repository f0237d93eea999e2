"""Tools to prove a serial link under stress: a fault-injecting TCP proxy and CPU hogs.

``FaultProxy(upstream_port, to_board=Faults(1e-3), to_host=Faults(1e-3))`` sits on 127.0.0.1 between a
client and a board's TCP port (QEMU's UART) and damages bytes at a per-byte rate in each direction:
bit flips, dropped bytes, duplicated bytes and inserted garbage (zeros included, so delimiters
appear and vanish too), and drops whole reads (``Faults(chunks=0.05)``: a USB packet or a TCP segment lost
at once). ``proxy.blackout("to host", 1.0)`` loses everything one way for a while (a cable that wobbles, a
driver that stalls). Faults are drawn from a seeded generator, so a run can be repeated; every fault is
counted in ``proxy.counts``. The proxy serves one client at a time and accepts the next when
either side closes (a client that reconnects after a board reset gets a fresh upstream connection).

``cpu_hogs(n)`` runs ``n`` busy processes for the duration of a ``with`` block: a loaded machine.
Used by tests/test_link.py and benchmarks/bench_link.py.
"""

from __future__ import annotations

import contextlib
import random
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from typing_extensions import Self

KINDS = ("flip", "drop", "duplicate", "insert")


@dataclass(frozen=True)
class Faults:
    rate: float = 0.0  # probability that a byte is damaged
    kinds: tuple[str, ...] = KINDS
    seed: int = 0
    chunks: float = 0.0  # probability that a whole read (up to 4 KiB as it arrived) is dropped


class _Damager:
    def __init__(self, faults: Faults, direction: str, counts: Counter[str]) -> None:
        self.faults, self.direction, self.counts = faults, direction, counts
        self.rng = random.Random(f"{faults.seed}:{direction}")
        self.dark_until = 0.0  # time.monotonic() before which everything is lost (a blackout)

    def __call__(self, data: bytes) -> bytes:
        f = self.faults
        if time.monotonic() < self.dark_until:
            self.counts[f"{self.direction} blackout bytes"] += len(data)
            return b""
        if f.chunks and self.rng.random() < f.chunks:
            self.counts[f"{self.direction} chunk drop"] += 1
            return b""
        if f.rate <= 0:
            return data
        out = bytearray()
        for b in data:
            if self.rng.random() >= f.rate:
                out.append(b)
                continue
            kind = self.rng.choice(f.kinds)
            self.counts[f"{self.direction} {kind}"] += 1
            if kind == "flip":
                out.append(b ^ (1 << self.rng.randrange(8)))
            elif kind == "duplicate":
                out += bytes([b, b])
            elif kind == "insert":
                out.append(b)
                out += bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 4)))
            # "drop": nothing
        return bytes(out)


class FaultProxy:
    """A damaging TCP proxy in front of ``127.0.0.1:upstream_port``; connect to ``proxy.url``."""

    def __init__(self, upstream_port: int, to_board: Faults = Faults(), to_host: Faults = Faults()) -> None:
        self.counts: Counter[str] = Counter()
        self._upstream = upstream_port
        self._to_board = _Damager(to_board, "to board", self.counts)
        self._to_host = _Damager(to_host, "to host", self.counts)
        self._listen = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self._listen.getsockname()[1]}"
        self.connections = 0
        self._closed = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listen.accept()
            except OSError:
                return
            try:
                board = socket.create_connection(("127.0.0.1", self._upstream), timeout=10)
            except OSError:
                client.close()
                continue
            self.connections += 1
            for s in (client, board):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            done = threading.Event()
            threading.Thread(
                target=self._pump, args=(client, board, self._to_board, done), daemon=True
            ).start()
            self._pump(board, client, self._to_host, done)
            done.wait()

    def _pump(self, src: socket.socket, dst: socket.socket, damage: _Damager, done: threading.Event) -> None:
        with contextlib.suppress(OSError):  # either side closing ends this connection
            while data := src.recv(4096):
                dst.sendall(damage(data))
        for s in (src, dst):  # the other pump sees its socket closed and ends too
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        if done.is_set():
            for s in (src, dst):
                s.close()
        done.set()

    def blackout(self, direction: str, seconds: float) -> None:
        """Lose every byte going ``direction`` ("to board" or "to host") for the next ``seconds``."""
        damager = {"to board": self._to_board, "to host": self._to_host}[direction]
        damager.dark_until = time.monotonic() + seconds

    def close(self) -> None:
        self._closed = True
        self._listen.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def cpu_hogs(n: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``n`` processes spinning on the CPU while the block runs."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield procs
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
