"""The streaming firmware in QEMU: bit-exact parity on held-out data, replay, errors, model refusal."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from firmware_fixtures import Trained, train_and_export, trained_firmware
from tinylstm.host.boards import QemuBoard
from tinylstm.host.bridge import CModel, load_library
from tinylstm.host.heldout import load_held_out
from tinylstm.host.link import Link
from tinylstm.host.parity import QEMU_IN_FLIGHT, run_parity, wait_hello
from tinylstm.host.protocol import ErrorCode, FrameType, InputF32, Pred, Source, StatsReq, parse_message
from tinylstm.host.stream import BoardStream
from tinylstm.trainer.errors import TinyLSTMError

pytestmark = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
    reason="needs arm-none-eabi-gcc and qemu-system-arm",
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return trained_firmware(tmp_path_factory.getbasetemp())


def test_clean_build_and_sizes(trained: Trained) -> None:
    sizes = trained.host.sizes
    assert sizes is not None
    groups = {g.name: g for g in sizes.groups}
    assert set(groups) == {"kernel", "model data", "app", "port", "rest"}
    assert groups["model data"].flash > 2000 and groups["kernel"].flash > 1000
    assert sizes.flash < 16 * 1024 and sizes.ram < 4 * 1024


def test_10k_held_out_steps_bit_exact(trained: Trained) -> None:
    with QemuBoard(trained.host.elf) as board, Link.open(board.url) as link:  # type: ignore[arg-type]
        report = run_parity(link, trained.export_dir, 10_000, in_flight=QEMU_IN_FLIGHT)
    assert report.passed, report.render()
    assert report.steps == 10_000 and report.mismatches == 0
    window = load_held_out(trained.export_dir).model.meta.window
    assert window and report.window == window and report.board_stats["steps"] == 10_000


def test_float_input_and_bad_frames_on_the_board(trained: Trained) -> None:
    cm = CModel(load_library(trained.export_dir))
    raw = np.asarray([[0.5, -1.0, 9.81, 0.1, 0.0, -0.2]], dtype=np.float32)
    expect = cm.step(cm.quantize_input(raw)[0])
    with QemuBoard(trained.host.elf) as board, Link.open(board.url) as link:  # type: ignore[arg-type]
        wait_hello(link)
        link.send(InputF32(tuple(float(v) for v in raw[0])))
        pred = Pred.unpack(link.expect(FrameType.PRED).payload)
        assert pred.step == 0 and np.array_equal(pred.outputs, expect)
        link.port.write(b"\x05garbage\x00")  # one bad frame
        frames = link.read(2.0)
        errors = [parse_message(f) for f in frames if f.type == FrameType.ERROR]
        assert [e.code for e in errors] == [ErrorCode.BAD_FRAME]  # type: ignore[union-attr]
        link.send(StatsReq())
        stats = parse_message(link.expect(FrameType.STATS))
        assert stats.frames_bad == 1 and stats.steps == 1  # type: ignore[union-attr]


def test_replay_streams_the_embedded_held_out_data(trained: Trained) -> None:
    held = load_held_out(trained.export_dir)
    cm = CModel(load_library(trained.export_dir))
    xs = held.stream(256)
    with QemuBoard(trained.replay.elf) as board, BoardStream(board.url, trained.export_dir) as s:  # type: ignore[arg-type]
        assert s.hello is not None and s.hello.source == Source.REPLAY
        preds = list(s.predictions(300, idle_timeout=5))
    assert [p.step for p in preds] == list(range(300))
    window = held.model.meta.window
    assert window and 256 % window == 0
    for p in preds:  # the replay loops over 256 samples; the window rule resets every `window` steps
        if p.step % window == 0:
            cm.reset()
        assert np.array_equal(p.raw, cm.step(xs[p.step % 256]))
    assert preds[0].label in held.model.meta.classes  # type: ignore[operator]
    assert s.counters.steps_missing == 0 and s.counters.frames_bad == 0


def test_other_model_is_refused(trained: Trained, tmp_path: Path) -> None:
    other = train_and_export(tmp_path, hidden=8, epochs=1, seed=1)
    refused = pytest.raises(TinyLSTMError, match=r"board runs model 0x[0-9a-f]{8} but .* holds model 0x[0-9a-f]{8}")
    with QemuBoard(trained.host.elf) as board, Link.open(board.url) as link, refused:  # type: ignore[arg-type]
        run_parity(link, other, 10)
