"""Byte-stream transport for the frame protocol (docs/serial-protocol.md).

``Link.open(url)`` opens a serial device, a QEMU ``socket://host:port``, an ``rfc2217://`` server
or ``loop://`` through pyserial, with one-line errors that say what is wrong and how to fix it
(unknown scheme, malformed URL, nothing listening, missing, busy, no permission). A link numbers
the frames it sends, counts the bytes both ways, and decodes what it receives with a
``FrameDecoder`` (``link.decoder`` holds the counters). A port that vanishes mid-run raises
``LinkLost``.
"""

from __future__ import annotations

import errno
import socket
import time
from array import array
from collections import deque
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import serial
from serial.tools import list_ports

try:  # POSIX hosts: the byte count of a socket's receive queue
    from fcntl import ioctl
    from termios import FIONREAD

    HAVE_FIONREAD = True
except ImportError:  # Windows: pyserial's count
    HAVE_FIONREAD = False

from tinylstm.errors import TinyLSTMError
from tinylstm.host.link.protocol import (
    MAGIC_BY_VERSION,
    VERSION,
    Error,
    Frame,
    FrameDecoder,
    FrameType,
    Message,
    encode_frame,
)

if TYPE_CHECKING:
    from typing_extensions import Self

DEFAULT_BAUD = 115200
URL_SCHEMES = ("socket", "rfc2217", "loop")
URL_HELP = (
    "use a device path (/dev/ttyUSB0, /dev/ttyACM0, COM3), socket://HOST:PORT (QEMU, "
    "e.g. socket://127.0.0.1:4444), rfc2217://HOST:PORT or loop://"
)


class LinkError(TinyLSTMError):
    """The port cannot be used, or the board did not answer as the protocol says."""


class LinkLost(LinkError):
    """The port went away mid-run (board unplugged, QEMU killed, connection reset)."""


def check_baud(baud: int) -> None:
    """Refuse a baud rate pyserial rejects with a bare number as its message (or a socket ignores)."""
    if baud <= 0:
        raise LinkError(
            f"--baud {baud}: give the board's UART rate in bits per second (the firmware's: {DEFAULT_BAUD})"
        )


def check_url(url: str) -> None:
    """Refuse a port URL that pyserial would reject with its own internals (scheme, host, port)."""
    if "://" not in url:
        if not url.strip():
            raise LinkError(f"empty serial port name: {URL_HELP}")
        return  # a device path
    scheme = url.split("://", 1)[0].lower()
    if scheme not in URL_SCHEMES:
        raise LinkError(f"unknown port URL scheme '{scheme}://' in {url}: {URL_HELP}")
    if scheme == "loop":
        return
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None or not 0 < port < 65536 or parts.path not in ("", "/"):
        raise LinkError(
            f"malformed {scheme} URL {url}: expected {scheme}://HOST:PORT with a port "
            f"number 1-65535, e.g. {scheme}://127.0.0.1:4444"
        )


def _open_error(url: str, exc: BaseException) -> LinkError:
    code = getattr(exc, "errno", None)
    text = str(exc)
    if url.startswith(("socket://", "rfc2217://")):
        if "Connection refused" in text or code == errno.ECONNREFUSED:
            return LinkError(
                f"nothing listens on {url} (connection refused): start the board first, e.g. "
                "`tinylstm flash FIRMWARE_DIR --board qemu-stm32f405`, and use the URL it prints"
            )
        if "timed out" in text:
            return LinkError(f"no answer from {url} (connection timed out): check the host and port")
        reason = text.split(": ", 2)[-1] if ": " in text else text
        return LinkError(f"cannot connect to {url}: {reason}")
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        ports = ", ".join(p.device for p in list_ports.comports()) or "none"
        return LinkError(f"serial port {url} not found (is the board plugged in?); ports present: {ports}")
    if code in (errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK):
        return LinkError(
            f"serial port {url} is busy: close the other program using it "
            "(serial monitor, `pio device monitor`, another tinylstm) and retry"
        )
    if code == errno.EACCES:
        return LinkError(
            f"no permission to open {url}: add your user to the 'dialout' group "
            "(sudo usermod -aG dialout $USER, then log in again)"
        )
    if code == errno.ENOTTY or "Inappropriate ioctl" in text:  # pyserial keeps the errno in its message
        return LinkError(
            f"{url} is not a serial port (it takes no baud rate): give the board's serial device "
            "(/dev/ttyUSB0, /dev/ttyACM0, COM3) or socket://HOST:PORT"
        )
    reason = text.splitlines()[0] if text else type(exc).__name__
    return LinkError(f"cannot open {url}: {reason}")


class Link:
    """A framed, numbered connection to a board over any pyserial port object."""

    def __init__(self, port: serial.SerialBase, url: str = "") -> None:
        self.port = port
        self.url = url or str(port.name)
        self.decoder = FrameDecoder()
        self.tx_seq = 0
        self.tx_bytes = 0  # bytes written since the link was opened
        self.rx_bytes = 0
        self._backlog: deque[Frame] = deque()

    def _waiting(self) -> int:
        """Bytes ready to read. pyserial's ``in_waiting`` of a ``socket://`` port is 0 or 1 (it polls the
        socket), so each read took one byte: 36 reads, each with two selects, per prediction frame from QEMU.
        The socket's own count (FIONREAD) reads what has arrived in one call."""
        sock = getattr(self.port, "_socket", None)
        if HAVE_FIONREAD and isinstance(sock, socket.socket):
            count = array("i", [0])
            try:
                ioctl(sock, FIONREAD, count)
            except OSError:  # closed under us: the read that follows reports the lost port
                return 1
            return count[0]
        return int(self.port.in_waiting)

    @classmethod
    def open(cls, url: str, baudrate: int = DEFAULT_BAUD) -> Link:
        """Open ``url`` exclusively (a device path, ``socket://host:port``, ``rfc2217://``, ``loop://``)."""
        check_url(url)
        check_baud(baudrate)
        try:
            port = serial.serial_for_url(url, baudrate=baudrate, timeout=0.05, exclusive=True)
        except (serial.SerialException, ValueError, OSError) as exc:
            raise _open_error(url, exc) from None
        sock = getattr(port, "_socket", None)
        if isinstance(sock, socket.socket):  # one INPUT frame per segment: no Nagle delay
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(port, url)

    def _lost(self, exc: BaseException) -> LinkLost:
        return LinkLost(
            f"lost {self.url}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__} "
            "(board reset or unplugged, QEMU stopped?)"
        )

    def write_frame(self, ftype: int, payload: bytes) -> tuple[int, int]:
        """Send one frame; returns (its seq, its size on the wire)."""
        seq = self.tx_seq
        wire = encode_frame(ftype, seq, payload)
        try:
            self.port.write(wire)
        except (serial.SerialException, OSError) as exc:
            raise self._lost(exc) from None
        self.tx_seq = (seq + 1) & 0xFFFF
        self.tx_bytes += len(wire)
        return seq, len(wire)

    def send(self, msg: Message) -> int:
        """Send one message; returns the sequence number it went out with."""
        return self.write_frame(msg.TYPE, msg.pack())[0]

    def read(self, timeout: float = 0.0) -> list[Frame]:
        """Frames received so far, waiting up to ``timeout`` seconds for at least one."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                data = self.port.read(max(1, self._waiting()))
            except (serial.SerialException, OSError) as exc:
                raise self._lost(exc) from None
            self.rx_bytes += len(data)
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
                        skipped += frames[i + 1 :]
                        if frame.type == ftype:
                            return frame
                        err = Error.unpack(frame.payload)
                        raise LinkError(f"board error {err.describe()} while waiting for {ftype.name}")
                    skipped.append(frame)
                if time.monotonic() >= deadline:
                    raise LinkError(
                        f"no {ftype.name} frame within {timeout:g} s on {self.url} ({self.describe()})"
                    )
        finally:
            self.requeue(skipped)

    def requeue(self, frames: list[Frame]) -> None:
        """Put ``frames`` back, in order, ahead of anything still queued: the next ``read`` returns them."""
        self._backlog.extendleft(reversed(frames))

    def describe(self) -> str:
        """What arrived so far, with a hint when it looks like another firmware or wire version."""
        d = self.decoder
        text = (
            f"{d.frames_ok} good frames, {d.frames_bad} bad, {d.pending_bytes} bytes without a delimiter: "
            "is TinyLSTM firmware running, at this baud rate, in binary mode?"
        )
        silent = not (d.frames_ok or d.frames_bad or d.pending_bytes or d.bytes_discarded)
        if silent and self.url.startswith("socket://"):
            text += (  # QEMU's chardev socket takes one client: a second one connects, and hears nothing
                " Nothing at all arrived: a QEMU board serves one client at a time; is another stream or "
                "parity connected to it?"
            )
        if d.foreign_magic is not None:
            versions = [v for v, m in MAGIC_BY_VERSION.items() if m == d.foreign_magic]
            which = f"wire version {versions[0]}" if versions else f"magic 0x{d.foreign_magic:02x}"
            text += (
                f" The board speaks {which}, this host version {VERSION}: rebuild and flash the firmware "
                "with this TinyLSTM (`tinylstm build`, `tinylstm flash`)"
            )
        return text

    def close(self) -> None:
        try:
            self.port.close()
        except (serial.SerialException, OSError):
            pass  # the port is already gone

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
