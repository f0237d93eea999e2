"""A freshly trained watch model, exported, and its firmware builds: shared by the firmware tests."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tinylstm.codegen.export import ModelSource, export
from tinylstm.host.boards.firmware import FirmwareBuild, build_firmware
from tinylstm.host.boards.registry import emulated_boards, get_board
from tinylstm.host.link.protocol import Error, FrameType, parse_message
from tinylstm.host.link.transport import Link
from tinylstm.trainer.checkpoint import CHECKPOINT_NAME
from tinylstm.trainer.data import load_dataset
from tinylstm.trainer.train import TrainConfig, fit

# every board QEMU runs: the firmware tests run on each (a new emulated board is picked up here)
EMULATED = [b.name for b in emulated_boards()]


@dataclass
class Trained:
    export_dir: Path
    host: FirmwareBuild  # host-fed at boot
    replay: FirmwareBuild  # replay at boot, one sample every 2 ms
    board: str = "qemu-stm32f405"


def require_board_tools(board: str) -> None:
    """Skip (a failure under CI=true, tests/conftest.py) when the board's compiler or QEMU is missing."""
    spec = get_board(board)
    gcc = f"{spec.toolchain.prefix}gcc"
    if shutil.which(gcc) is None:
        pytest.skip(f"{board} needs {gcc}: {spec.toolchain.install_hint()}")
    if spec.emulator is not None and shutil.which(spec.emulator.system) is None:
        pytest.skip(f"{board} needs {spec.emulator.system}: {spec.emulator.install_hint()}")


def train_and_export(root: Path, hidden: int = 16, epochs: int = 3, seed: int = 0) -> Path:
    result = fit(
        load_dataset("watch"),
        # the readout given: the recipe would cross-validate mean against max at this small epoch budget
        TrainConfig(hidden=hidden, epochs=epochs, seed=seed, progress=False, readout="mean"),
        root / "run",
    )
    export(ModelSource(str(result.checkpoint_path)), root / "export")
    return root / "export"


def trained_firmware(base: Path, board: str = "qemu-stm32f405") -> Trained:
    """Train and export once per test session (``base``: the session's temporary root), build for
    ``board`` once per board."""
    require_board_tools(board)
    root = base / "trained-firmware"
    if not (root / "export").is_dir():
        train_and_export(root)
    export_dir = root / "export"
    host = build_firmware(export_dir, board, root / board / "fw-host")
    replay = build_firmware(
        export_dir,
        board,
        root / board / "fw-replay",
        source="replay",
        defines={"TL_REPLAY_PERIOD_MS": "2"},
    )
    return Trained(export_dir, host, replay, board)


def wide_export(trained: Trained) -> Path:
    """The trained watch model exported again with an int16 hidden state (an int16-h model: int16 input), once
    per test session."""
    root = trained.export_dir.parent
    export_dir = root / "export-h16"
    if not export_dir.is_dir():
        export(ModelSource(str(root / "run" / CHECKPOINT_NAME)), export_dir, hidden_bits=16)
    return export_dir


def next_error(link: Link, timeout: float = 10.0) -> Error:
    """The next ERROR frame from the board; fails on a PRED before it (the frame it refused ran no step)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for frame in link.read(0.5):
            assert frame.type != FrameType.PRED, "the board ran a step before it sent ERROR"
            if frame.type == FrameType.ERROR:
                error = parse_message(frame)
                assert isinstance(error, Error)
                return error
    raise AssertionError(f"no ERROR frame within {timeout:g} s")
