"""A freshly trained watch model, exported, and its firmware builds: shared by the firmware tests."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tinylstm.codegen.export import ModelSource, export
from tinylstm.host.boards.firmware import FirmwareBuild, build_firmware
from tinylstm.host.boards.registry import emulated_boards, get_board
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
