"""Byte-stream transport for the frame protocol (docs/serial-protocol.md).

``Link.open(url)`` opens a serial port, a QEMU ``socket://host:port`` or ``loop://`` through pyserial,
with errors that say what is wrong (missing, busy, no permission). A link numbers the frames it sends
and decodes the frames it receives with a ``FrameDecoder`` (``link.decoder`` holds the counters).
"""
from __future__ import annotations

import errno
import time
from collections import deque
from types import TracebackType
from typing import TYPE_CHECKING

import serial
from serial.tools import list_ports
from tinylstm.host.protocol import Error, Frame, FrameDecoder, FrameType, Message, encode_message
from tinylstm.trainer.errors import TinyLSTMError

if TYPE_CHECKING:
    from typing_extensions import Self

DEFAULT_BAUD = 115200


class LinkError(TinyLSTMError):
    """The port cannot be used, or the board did not answer as the protocol says."""


def _open_error(url: str, exc: serial.SerialException) -> LinkError:
    code = getattr(exc, "errno", None)
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        ports = ", ".join(p.device for p in list_ports.comports()) or "none"
        return LinkError(f"serial port {url} not found (is the board plugged in?); ports present: {ports}")
    if code in (errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK):
        return LinkError(f"serial port {url} is busy: close the other program using it "
                         "(serial monitor, `pio device monitor`, another tinylstm) and retry")
    if code == errno.EACCES:
        return LinkError(f"no permission to open {url}: add your user to the 'dialout' group "
                         "(sudo usermod -aG dialout $USER, then log in again)")
    return LinkError(f"cannot open {url}: {exc}")


class Link:
    """A framed, numbered connection to a board over any pyserial port object."""

    def __init__(self, port: serial.SerialBase) -> None:
        self.port = port
        self.decoder = FrameDecoder()
        self.tx_seq = 0
        self._backlog: deque[Frame] = deque()

    @classmethod
    def open(cls, url: str, baudrate: int = DEFAULT_BAUD) -> Link:
        """Open ``url`` exclusively (a device path, ``socket://host:port``, ``loop://``)."""
        try:
            port = serial.serial_for_url(url, baudrate=baudrate, timeout=0.05, exclusive=True)
        except serial.SerialException as exc:
            raise _open_error(url, exc) from None
        return cls(port)

    def send(self, msg: Message) -> int:
        """Send one message; returns the sequence number it went out with."""
        seq = self.tx_seq
        self.port.write(encode_message(msg, seq))
        self.tx_seq = (seq + 1) & 0xFFFF
        return seq

    def read(self, timeout: float = 0.0) -> list[Frame]:
        """Frames received so far, waiting up to ``timeout`` seconds for at least one."""
        deadline = time.monotonic() + timeout
        while True:
            data = self.port.read(max(1, self.port.in_waiting))
            self._backlog.extend(self.decoder.feed(data))
            if self._backlog or time.monotonic() >= deadline:
                break
        frames = list(self._backlog)
        self._backlog.clear()
        return frames

    def expect(self, ftype: FrameType, timeout: float = 2.0) -> Frame:
        """The next frame of type ``ftype``; other frames stay queued for ``read``.

        Raises LinkError on timeout, or if the board answers with an ERROR frame meanwhile.
        """
        deadline = time.monotonic() + timeout
        skipped: list[Frame] = []
        try:
            while True:
                frames = self.read(max(0.0, deadline - time.monotonic()))
                for i, frame in enumerate(frames):
                    if frame.type in (ftype, FrameType.ERROR):
                        skipped += frames[i + 1:]
                        if frame.type == ftype:
                            return frame
                        err = Error.unpack(frame.payload)
                        raise LinkError(
                            f"board error {err.code} while waiting for {ftype.name}: {err.message}")
                    skipped.append(frame)
                if time.monotonic() >= deadline:
                    d = self.decoder
                    raise LinkError(
                        f"no {ftype.name} frame within {timeout:g} s on {self.port.name} "
                        f"({d.frames_ok} good frames, {d.frames_bad} bad, {d.pending_bytes} bytes without a "
                        "delimiter): is TinyLSTM firmware running, at this baud rate, in binary mode?")
        finally:
            self._backlog.extendleft(reversed(skipped))

    def close(self) -> None:
        self.port.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
