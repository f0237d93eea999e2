"""Drift alerts (host/link/drift.py): held-out data raises none; shifted or scaled input channels raise one
within one rolling window of steps, on the host kernel and through a host-fed stream from the QEMU board
(the API's events and the CLI's status line and log)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from firmware_fixtures import Trained, trained_firmware, wide_export

from tinylstm.codegen.heldout import load_held_out
from tinylstm.host.boards import QemuBoard
from tinylstm.host.cli.main import main
from tinylstm.host.link.drift import DriftEvent, DriftMonitor, drift_reference
from tinylstm.host.link.stream import BoardStream
from tinylstm.host.targets.bridge import CModel, load_library

STEPS = 6000


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return trained_firmware(tmp_path_factory.getbasetemp())


def shifted(xs: np.ndarray, ref: dict, channel: int, offset: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """``xs`` with one channel offset by ``offset`` held-out stds and scaled by ``scale``, saturated to the
    model's input type (``xs``'s: int8, an int16-h model's int16)."""
    x = xs.astype(np.float64)
    x[:, channel] = x[:, channel] * scale + offset * ref["input_std"][channel]
    top = np.iinfo(xs.dtype)
    return np.clip(np.round(x), top.min, top.max).astype(xs.dtype)


def host_events(export_dir: Path, xs: np.ndarray) -> tuple[DriftMonitor, list[DriftEvent]]:
    """The monitor over the host kernel's predictions for ``xs`` (the board's window rule)."""
    held = load_held_out(export_dir)
    ref = drift_reference(export_dir)
    assert ref is not None
    mon = DriftMonitor(ref, held.model.output_scale)
    cm = CModel(load_library(export_dir))
    for t, x in enumerate(xs):
        if held.window and t % held.window == 0:
            cm.reset()
        mon.update(tuple(int(v) for v in cm.step(x)), x)
    return mon, mon.events


def test_the_export_stores_the_reference(trained: Trained) -> None:
    ref = drift_reference(trained.export_dir)
    assert ref is not None and ref["steps"] > 10_000 and abs(sum(ref["class_histogram"]) - 1) < 1e-3
    assert len(ref["input_range"]["low"]) == len(ref["input_mean"]) == 6
    assert 0 <= ref["confidence_drop_seen"] < 0.2


@pytest.mark.parametrize("hidden_bits", [8, 16])
def test_held_out_data_raises_nothing_and_shifts_raise_within_a_window(
    trained: Trained, hidden_bits: int
) -> None:
    """On the int8 export and on its int16-h export, whose reference is in its int16 input's units."""
    export_dir = trained.export_dir if hidden_bits == 8 else wide_export(trained)
    held = load_held_out(export_dir)
    ref = drift_reference(export_dir)
    assert ref is not None
    xs = held.stream(STEPS)
    assert xs.dtype == (np.int8 if hidden_bits == 8 else np.int16)
    mon, events = host_events(export_dir, xs)
    assert events == [] and mon.status() == "drift: none"
    for name, x in {
        "offset +3 std": shifted(xs, ref, 0, offset=3.0),
        "scaled x4": shifted(xs, ref, 1, scale=4.0),
    }.items():
        mon, events = host_events(export_dir, x)
        raised = [e for e in events if e.state == "raised" and e.kind == "input"]
        assert raised and raised[0].prediction <= mon.window, (name, events)  # as soon as the window is full
        assert "input channel" in raised[0].message and mon.status().startswith("DRIFT")


def test_a_host_fed_stream_from_the_board_reports_drift(trained: Trained) -> None:
    held = load_held_out(trained.export_dir)
    ref = drift_reference(trained.export_dir)
    assert ref is not None
    xs = shifted(held.stream(STEPS), ref, 0, offset=3.0)
    seen: list[DriftEvent] = []
    with QemuBoard(trained.host.elf) as board:  # type: ignore[arg-type]
        with BoardStream(board.url, trained.export_dir, on_drift=seen.append) as s:
            preds = list(s.predictions(feed=xs))
            assert s.drift is not None
    assert len(preds) == STEPS and seen and seen[0].kind == "input" and seen[0].state == "raised"
    window = s.drift.window
    assert preds[window - 2].drift == () and "input" in preds[window - 1].drift


def test_cli_stream_of_held_out_data_shows_no_drift(
    trained: Trained, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "stream.csv"
    with QemuBoard(trained.host.elf) as board:  # type: ignore[arg-type]
        args = ["stream", "--port", board.url, "--export", str(trained.export_dir), "--feed", "held-out"]
        assert main([*args, "--count", str(STEPS), "--quiet", "--log", str(log)]) == 0
    err = capsys.readouterr().err
    assert "# drift: none; 0 drift events" in err and "drift raised" not in err
    rows = list(csv.DictReader(log.open()))
    assert len(rows) == STEPS and all(r["drift"] == "" for r in rows)
    assert json.loads((trained.export_dir / "export-report.json").read_text())["drift_reference"]["steps"] > 0
