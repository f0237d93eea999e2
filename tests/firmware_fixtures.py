"""A freshly trained watch model, exported, and its firmware builds: shared by the firmware tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tinylstm.codegen.export import ModelSource, export
from tinylstm.host.firmware import FirmwareBuild, build_firmware
from tinylstm.trainer.data import load_dataset
from tinylstm.trainer.train import TrainConfig, fit


@dataclass
class Trained:
    export_dir: Path
    host: FirmwareBuild  # qemu-stm32f405, host-fed at boot
    replay: FirmwareBuild  # qemu-stm32f405, replay at boot, one sample every 2 ms


def train_and_export(root: Path, hidden: int = 16, epochs: int = 3, seed: int = 0) -> Path:
    result = fit(
        load_dataset("watch"),
        TrainConfig(hidden=hidden, epochs=epochs, seed=seed, progress=False),
        root / "run",
    )
    export(ModelSource(str(result.checkpoint_path)), root / "export")
    return root / "export"


def trained_firmware(base: Path) -> Trained:
    """Train, export and build once per test session (``base``: the session's temporary root)."""
    root = base / "trained-firmware"
    if not (root / "export").is_dir():
        train_and_export(root)
    export_dir = root / "export"
    host = build_firmware(export_dir, "qemu-stm32f405", root / "fw-host")
    replay = build_firmware(
        export_dir,
        "qemu-stm32f405",
        root / "fw-replay",
        source="replay",
        defines={"TL_REPLAY_PERIOD_MS": "2"},
    )
    return Trained(export_dir, host, replay)
