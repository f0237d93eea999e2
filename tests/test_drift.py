"""Drift alerts (host/link/drift.py): held-out data raises none; shifted or scaled input channels raise one
within one rolling window of steps, on the host kernel and through a host-fed stream from the QEMU board
(the API's events and the CLI's status line and log)."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from firmware_fixtures import Trained, trained_firmware, wide_export

from tinylstm.codegen.heldout import load_held_out
from tinylstm.errors import TinyLSTMError
from tinylstm.host.boards import QemuBoard
from tinylstm.host.cli.main import main
from tinylstm.host.link.drift import DriftEvent, DriftMonitor, DriftThresholds, drift_reference
from tinylstm.host.link.stream import BoardStream
from tinylstm.host.targets.bridge import CModel

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
    cm = CModel.from_generated(export_dir)
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


def test_a_reference_from_the_training_split_is_named_and_the_export_says_so(
    trained: Trained, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A model trained with --test 0 has no held-out data: export builds the reference from the training split
    (its confidence higher than unseen data gives), records which, and says so; was: silently."""
    assert drift_reference(trained.export_dir)["data"] == "held-out split"  # type: ignore[index]
    rng = np.random.default_rng(0)
    y = np.arange(60) % 3
    np.savez(
        tmp_path / "d.npz", X=rng.standard_normal((60, 16, 2)).astype(np.float32) + y[:, None, None], y=y
    )
    assert main(["train", "--data", str(tmp_path / "d.npz"), "--test", "0", "--epochs", "1", "--quiet",
                 "--hidden", "4", "--out", str(tmp_path / "r")]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["export", str(tmp_path / "r" / "model.pt"), "--out", str(tmp_path / "e")]) == 0
    out = capsys.readouterr().out
    assert (
        "note: no held-out data (trained with --test 0): the drift reference is the training split's" in out
    )
    assert "confidence alerts fire sooner" in out
    assert drift_reference(tmp_path / "e")["data"] == "training split"  # type: ignore[index]
    # a regressor has no confidence alerts (the note named them): its outputs' range is watched
    np.savez(
        tmp_path / "g.npz", X=rng.standard_normal((60, 16, 2)).astype(np.float32), y=rng.standard_normal(60)
    )
    assert main(["train", "--data", str(tmp_path / "g.npz"), "--test", "0", "--epochs", "1", "--quiet",
                 "--hidden", "4", "--out", str(tmp_path / "g")]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["export", str(tmp_path / "g" / "model.pt"), "--out", str(tmp_path / "ge")]) == 0
    out = capsys.readouterr().out
    assert "output alerts fire sooner" in out and "confidence" not in out


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
    out, err = capsys.readouterr()
    assert "# drift: none; 0 drift events" in err and "drift raised" not in err
    hello = out.splitlines()[0]  # the board's model as its HELLO frame describes it
    assert hello.startswith("# board ") and "(int8 h, int8 input), " in hello, hello
    rows = list(csv.DictReader(log.open()))
    assert len(rows) == STEPS and all(r["drift"] == "" for r in rows)
    assert json.loads((trained.export_dir / "export-report.json").read_text())["drift_reference"]["steps"] > 0


def small_reference() -> dict:
    """A drift reference as codegen/drift_reference.py writes it: 2 inputs, 3 classes, no window."""
    return {
        "steps": 100,
        "window": 0,
        "input_mean": [0.0, 1.0],
        "input_std": [2.0, 3.0],
        "input_range": {"low": [-10.0, -10.0], "high": [10.0, 10.0]},
        "input_out_of_range_seen": 0.01,
        "class_histogram": [0.5, 0.49, 0.01],
        "confidence_by_class": [0.8, 0.7, 0.6],
        "confidence_drop_seen": 0.02,
    }


@pytest.mark.parametrize(
    ("outputs", "inputs", "message"),
    [
        ((float("nan"), 0, 0), None, "the outputs hold NaN or infinity"),
        ((float("inf"), 0, 0), None, "the outputs hold NaN or infinity"),
        ((1, 2), None, "the outputs have shape (2,): give the 3 finite outputs"),
        ((), None, "the outputs have shape (0,)"),
        (("a", "b", "c"), None, "the outputs are not numbers"),
        ((1, 0, 0), np.array([np.nan, 0.0]), "the inputs hold NaN or infinity"),
        ((1, 0, 0), np.zeros((2, 2)), "the inputs have shape (2, 2): give the 2 finite inputs"),
        ((1, 0, 0), np.zeros(0), "the inputs have shape (0,)"),
    ],
)
def test_the_monitor_refuses_a_prediction_it_cannot_judge(
    outputs: tuple, inputs: object, message: str
) -> None:
    """Was: NaN outputs counted as class 0, NaN inputs as in range; wrong sizes a numpy traceback."""
    mon = DriftMonitor(small_reference(), 0.01, DriftThresholds(window=2))
    with pytest.raises(TinyLSTMError, match=re.escape(message)):
        mon.update(outputs, inputs)  # type: ignore[arg-type]
    assert mon.seen == 0


def _edited(key: str, value: object) -> dict:
    ref = small_reference()
    if value is _DROP:
        del ref[key]
    else:
        ref[key] = value
    return ref


_DROP = object()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("input_mean", _DROP, "input_mean is 'None'"),
        ("input_range", _DROP, "input_range is 'None', not an object with low and high"),
        ("input_range", {"low": [-1.0, -1.0]}, "high is 'None'"),
        (
            "input_range",
            {"low": [1.0, 1.0], "high": [-1.0, -1.0]},
            "input_range has a low end above its high",
        ),
        ("input_std", [-1.0, 2.0], "input_std is '[-1.0, 2.0]', not a list of 2 finite numbers >= 0"),
        ("confidence_by_class", [0.5], "not a list of 3 finite numbers"),
        ("confidence_by_class", ["a", "b", "c"], "confidence_by_class"),
        ("class_histogram", "abc", "class_histogram is 'abc'"),
        ("confidence_drop_seen", None, "confidence_drop_seen is None, not a finite number"),
        ("window", -5, "window is -5"),
        ("window", "128", "window is '128'"),
    ],
)
def test_an_edited_reference_is_one_error(tmp_path: Path, key: str, value: object, message: str) -> None:
    """Was: KeyError, numpy broadcast errors or silently wrong alerts (a low end above the high end: every
    input out of range)."""
    with pytest.raises(TinyLSTMError, match="the drift reference('s input_range)? is damaged") as e:
        DriftMonitor(_edited(key, value), 0.01)
    assert message in str(e.value) and "--no-drift" in str(e.value)
    (tmp_path / "export-report.json").write_text(json.dumps({"drift_reference": _edited(key, value)}))
    with pytest.raises(TinyLSTMError, match="export-report.json's drift_reference"):
        drift_reference(tmp_path)


@pytest.mark.parametrize(
    "kwargs",
    [{"window": 0}, {"window": -3}, {"window": 2.5}, {"confidence_drop": float("nan")}, {"out_of_range": -1}],
)
def test_thresholds_out_of_their_range_are_refused(kwargs: dict) -> None:
    """Was: window 0 silently the default, -3 a ValueError, NaN a monitor that never alerts."""
    with pytest.raises(TinyLSTMError, match="DriftThresholds"):
        DriftThresholds(**kwargs)
    with pytest.raises(TinyLSTMError, match="output_scale nan"):
        DriftMonitor(small_reference(), float("nan"))


def test_a_report_without_a_reference_and_a_well_formed_one(tmp_path: Path) -> None:
    """No reference: None (an export from before drift alerts); a sound reference: no alert when it holds."""
    (tmp_path / "export-report.json").write_text(json.dumps({"other": 1}))
    assert drift_reference(tmp_path) is None
    mon = DriftMonitor(small_reference(), 0.01, DriftThresholds(window=2))
    assert mon.update((1000, 0, 0), np.zeros(2)) == [] and mon.update((1000, 0, 0), np.zeros(2)) == []
    assert mon.status() == "drift: none" and (mon.inputs, mon.outputs) == (2, 3)


def test_on_drift_where_it_would_never_be_called_is_refused(
    trained: Trained, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was: a callback given without an export, with the alerts off, or with an export from before drift
    alerts was silently never called. The CLI, which always has its printer, passes it only with alerts on."""
    with pytest.raises(TinyLSTMError, match="on_drift is never called without the model's export"):
        BoardStream("socket://localhost:1", on_drift=print)
    with pytest.raises(TinyLSTMError, match="on_drift is never called without drift alerts, which are off"):
        BoardStream("socket://localhost:1", trained.export_dir, drift=None, on_drift=print)
    old = tmp_path / "old-export"
    shutil.copytree(trained.export_dir, old)
    report = json.loads((old / "export-report.json").read_text())
    del report["drift_reference"]
    (old / "export-report.json").write_text(json.dumps(report))
    with pytest.raises(TinyLSTMError, match="has no drift reference .*--no-drift"):
        BoardStream("socket://localhost:1", old, on_drift=print)
    assert BoardStream("socket://localhost:1", old).drift is None  # the API without a callback: no alerts
    assert main(["stream", "--port", "socket://localhost:1", "--export", str(old)]) == 2
    assert "has no drift reference" in capsys.readouterr().err
    (old / "export-report.json").unlink()  # was called "an export made before drift alerts"
    with pytest.raises(
        TinyLSTMError, match="export-report.json is missing \\(it holds the drift reference\\)"
    ):
        BoardStream("socket://localhost:1", old, on_drift=print)
