"""Run firmware in QEMU (the board's Emulator record) with its first UART on a local TCP port.

QEMU listens with `wait=on`: the machine does not start until a client connects, so no
output is lost. Whoever talks to the board connects, e.g. ``serial.serial_for_url(board.url)``;
that connection is what boots the firmware.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from tinylstm.errors import TinyLSTMError
from tinylstm.host.boards.registry import Emulator, board_for_elf

if TYPE_CHECKING:
    from typing_extensions import Self

_LISTENING = "waiting for connection"
_START_ATTEMPTS = 3


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class QemuBoard:
    """An emulated board. Use as a context manager; QEMU is killed on exit.

    ``emulator`` defaults to the one of the board the ELF was built for (told by its machine type)."""

    def __init__(
        self,
        elf: Path,
        emulator: Emulator | None = None,
        icount: bool = False,
        extra_args: tuple[str, ...] = (),
        start_timeout: float = 10.0,
    ) -> None:
        self.elf = Path(elf)
        if emulator is None:
            if not self.elf.is_file():
                raise TinyLSTMError(f"firmware {self.elf} does not exist")
            emulator = board_for_elf(self.elf).emulator
            assert emulator is not None
        found = shutil.which(emulator.system)
        if found is None:
            raise TinyLSTMError(f"{emulator.system} not found on PATH; {emulator.install_hint()}")
        self._qemu = found
        self.emulator = emulator
        self.icount = icount
        self.extra_args = extra_args
        self.start_timeout = start_timeout
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._output: list[str] = []

    @property
    def url(self) -> str:
        """pyserial URL of the board's UART (`serial.serial_for_url(url)`)."""
        return f"socket://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """True while QEMU runs (it may still be waiting for its first client)."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def output(self) -> str:
        """What QEMU printed so far (errors, semihosting output)."""
        return "".join(self._output)

    def start(self) -> None:
        """Start QEMU and return once its UART port listens (the guest waits for a client)."""
        if not self.elf.is_file():
            raise TinyLSTMError(f"firmware {self.elf} does not exist")
        port = self.port or _free_port()  # a restart keeps the URL when it can
        for _ in range(_START_ATTEMPTS):
            if self._launch(port):
                self.port = port
                return
            port = _free_port()
        raise TinyLSTMError(f"QEMU did not start {self.elf.name}:\n{self.output}")

    def _launch(self, port: int) -> bool:
        cmd = [
            self._qemu, "-M", self.emulator.machine, "-nographic", "-monitor", "none",
            *self.emulator.args,
            "-kernel", str(self.elf),
            "-serial", f"tcp:127.0.0.1:{port},server=on,wait=on,nodelay=on",
            *(["-icount", "shift=0"] if self.icount else []),
            *self.extra_args,
        ]  # fmt: skip
        self._output = []
        listening = threading.Event()
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        threading.Thread(target=self._drain, args=(proc, listening), daemon=True).start()
        self._proc = proc
        if listening.wait(self.start_timeout) and proc.poll() is None:
            return True
        self.kill()
        return False

    def _drain(self, proc: subprocess.Popen[bytes], listening: threading.Event) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode(errors="replace")
            self._output.append(line)
            if _LISTENING in line:
                listening.set()
        listening.set()  # QEMU exited: stop waiting

    def kill(self) -> None:
        """Kill QEMU at once, like a board losing power mid-stream."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def restart(self) -> None:
        """Power-cycle: kill and start again, on the same port if it is still free."""
        self.kill()
        self.start()

    def halt(self, seconds: float) -> None:
        """Stop the board for ``seconds`` and let it go on (a debugger halt, a starved emulator): the guest
        keeps its state, and what the host sends meanwhile waits in the port."""
        if self._proc is None or self._proc.poll() is not None:
            raise TinyLSTMError("QEMU is not running")
        self._proc.send_signal(signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            self._proc.send_signal(signal.SIGCONT)

    def wait(self, timeout: float) -> int:
        """Wait for the firmware to exit (semihosting) and return QEMU's exit code."""
        if self._proc is None:
            raise TinyLSTMError("QEMU was never started")
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TinyLSTMError(f"{self.elf.name} did not exit within {timeout} s") from None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.kill()
