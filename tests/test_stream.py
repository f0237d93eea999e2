"""The stream client against the emulated board: power loss mid-stream, a corrupting link, missing ports,
and flashing without the tools."""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
from firmware_fixtures import Trained, trained_firmware

from tinylstm.codegen.heldout import load_held_out
from tinylstm.errors import TinyLSTMError
from tinylstm.host.boards import QemuBoard
from tinylstm.host.boards.flash import flash
from tinylstm.host.cli.main import main
from tinylstm.host.link.stream import BoardStream
from tinylstm.host.targets.bridge import CModel

needs_arm = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="needs arm-none-eabi-gcc")
needs_qemu = pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="needs qemu-system-arm")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return trained_firmware(tmp_path_factory.getbasetemp())


@needs_arm
@needs_qemu
def test_power_loss_mid_stream_is_counted_and_recovered(trained: Trained) -> None:
    with QemuBoard(trained.replay.elf) as board, BoardStream(board.url, trained.export_dir) as s:  # type: ignore[arg-type]
        it = s.predictions(idle_timeout=5)
        first = [next(it) for _ in range(100)]
        board.restart()  # QEMU killed and started again on the same port: the client must reconnect
        second = [next(it) for _ in range(100)]
        counters = s.live_counters()
    assert counters.disconnects == 1
    one, two = counters.sessions
    assert one.ended == "disconnect" and two.ended == "open"
    received_before = [p for p in first + second if p.session == 0]
    assert one.received == len(received_before) and one.first_step == 0
    assert [p.step for p in received_before] == list(range(one.last_step + 1))  # type: ignore[operator]
    after = [p for p in second if p.session == 1]
    assert [p.step for p in after] == list(range(len(after))) and after
    assert counters.steps_missing == 0 and counters.frames_bad == 0


class FlippingProxy:
    """TCP proxy between QEMU and the client that flips one byte in every `every` board->host bytes.

    A 0x00 (frame delimiter) is never created or destroyed and flips are far apart, so every flip
    corrupts exactly one frame."""

    def __init__(self, upstream: int, every: int = 997, skip: int = 200) -> None:
        self.flips = 0
        self._every, self._count, self._skip = every, 0, skip
        self._listen = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self._listen.getsockname()[1]}"
        self._upstream = upstream
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        client, _ = self._listen.accept()
        board = socket.create_connection(("127.0.0.1", self._upstream))
        threading.Thread(target=self._pump, args=(client, board, False), daemon=True).start()
        self._pump(board, client, True)

    def _pump(self, src: socket.socket, dst: socket.socket, corrupt: bool) -> None:
        with contextlib.suppress(OSError):  # either side closing ends the proxy
            self._forward(src, dst, corrupt)

    def _forward(self, src: socket.socket, dst: socket.socket, corrupt: bool) -> None:
        while data := src.recv(4096):
            buf = bytearray(data)
            for i, b in enumerate(buf):
                self._count += corrupt
                if corrupt and self._count > self._skip and self._count % self._every == 0 and b:
                    buf[i] = b ^ (0x01 if b != 0x01 else 0x02)
                    self.flips += 1
            dst.sendall(buf)


@needs_arm
@needs_qemu
def test_corrupted_link_every_bad_frame_counted_none_accepted(trained: Trained) -> None:
    held = load_held_out(trained.export_dir)
    cm = CModel.from_generated(trained.export_dir)
    xs = held.stream(256)
    with QemuBoard(trained.replay.elf) as board:
        proxy = FlippingProxy(board.port)
        with BoardStream(proxy.url, trained.export_dir) as s:
            preds = list(s.predictions(600, idle_timeout=5))
            counters = s.live_counters()
    last = preds[-1].step
    assert proxy.flips >= 10
    # Frames in flight at the end may have been flipped after the last accepted one: count those out.
    assert counters.frames_bad in (proxy.flips, proxy.flips - 1), (counters, proxy.flips)
    assert counters.steps_missing == counters.frames_dropped == counters.frames_bad
    assert len(preds) + counters.steps_missing == last + 1
    expected = {}
    for step in range(last + 1):
        if step % held.model.meta.window == 0:  # type: ignore[operator]
            cm.reset()
        expected[step] = cm.step(xs[step % 256])
    assert all(np.array_equal(p.raw, expected[p.step]) for p in preds)  # no corrupt frame was accepted


def test_missing_port_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(TinyLSTMError, match="not found"):
        BoardStream("/dev/ttyTINYLSTM404").open()
    assert main(["stream", "--port", "/dev/ttyTINYLSTM404"]) == 2
    assert "serial port /dev/ttyTINYLSTM404 not found" in capsys.readouterr().err


def test_flashing_without_tools_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    # an ARM ELF header (e_machine 40 at offset 18): flash checks the file before it looks for a programmer
    (tmp_path / "tinylstm.elf").write_bytes(
        b"\x7fELF\x01\x01\x01" + bytes(11) + (40).to_bytes(2, "little") + bytes(32)
    )
    with pytest.raises(TinyLSTMError, match="stlink-tools .* openocd .* pyocd"):
        flash(tmp_path, "stm32f405")
    with pytest.raises(TinyLSTMError, match="neither a PlatformIO project"):
        flash(tmp_path, "esp32dev")
