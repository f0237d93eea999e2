"""The streaming firmware in QEMU: bit-exact parity on held-out data, replay, errors, model refusal; an
int16-h model's firmware takes int16 input (INPUT_S16) and refuses int8 INPUT frames, and the reverse; so does
an int8-h model's with an int16 input (-DTL_INPUT16), whose HELLO says so."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from firmware_fixtures import (
    EMULATED,
    Trained,
    next_error,
    require_board_tools,
    train_and_export,
    trained_firmware,
    wide_export,
)

from tinylstm.codegen import golden
from tinylstm.codegen.emit_c import emit_c
from tinylstm.codegen.export import ModelSource, export
from tinylstm.codegen.heldout import load_held_out
from tinylstm.codegen.quantize import IntModel
from tinylstm.codegen.random_models import random_inputs, random_int_model
from tinylstm.codegen.store import save_int_model
from tinylstm.contract.cells import CELLS
from tinylstm.errors import TinyLSTMError
from tinylstm.host.analysis.parity import run_parity
from tinylstm.host.boards import QemuBoard
from tinylstm.host.boards.firmware import FirmwareBuild, build_firmware
from tinylstm.host.cli.main import main
from tinylstm.host.link.feed import Feeder, FeedError, wait_hello
from tinylstm.host.link.protocol import (
    ErrorCode,
    FrameType,
    Input,
    InputF32,
    InputS16,
    Mode,
    Nak,
    NakReason,
    Pred,
    PredReq,
    Reset,
    Source,
    Stats,
    StatsReq,
    parse_message,
)
from tinylstm.host.link.stream import BoardStream
from tinylstm.host.link.transport import Link, LinkError
from tinylstm.host.targets.bridge import CModel
from tinylstm.trainer.checkpoint import CHECKPOINT_NAME


@pytest.fixture(scope="module", params=EMULATED)
def trained(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Trained:
    return trained_firmware(tmp_path_factory.getbasetemp(), request.param)


def test_clean_build_and_sizes(trained: Trained) -> None:
    sizes = trained.host.sizes
    assert sizes is not None
    groups = {g.name: g for g in sizes.groups}
    assert set(groups) == {"kernel", "model data", "app", "port", "libgcc", "literals", "rest"}
    assert groups["model data"].flash > 2000 and groups["kernel"].flash > 1000
    # link-time optimised: the merged literals are the board name and constant pools (the error texts are the
    # host's: wire version 3), the rest only alignment padding
    assert groups["rest"].flash < 64 and 0 < groups["literals"].flash < 128
    if trained.board == "qemu-stm32f405":  # this smaller model's firmware (8 KB) within the demo's 12 KB goal
        assert sizes.flash <= 12 * 1024 and sizes.ram < 4 * 1024  # the demo's: results/firmware_size.md
    else:  # no FPU: the float input conversion takes libgcc's soft float (4 KB)
        assert sizes.flash < 24 * 1024 and sizes.ram < 4 * 1024


def test_10k_held_out_steps_bit_exact(trained: Trained) -> None:
    with QemuBoard(trained.host.elf) as board, Link.open(board.url) as link:  # type: ignore[arg-type]
        report = run_parity(link, trained.export_dir, 10_000)
    assert report.passed and report.clean, report.render()
    assert report.steps == 10_000 and report.mismatches == 0
    window = load_held_out(trained.export_dir).model.meta.window
    assert window and report.window == window and report.board_stats["steps"] == 10_000


def test_float_input_accounting_and_bad_frames_on_the_board(trained: Trained) -> None:
    cm = CModel.from_generated(trained.export_dir)
    raw = np.asarray([[0.5, -1.0, 9.81, 0.1, 0.0, -0.2], [0.1, 0.2, 9.7, 0.0, 0.3, -0.1]], dtype=np.float32)
    q = cm.quantize_input(raw)
    expect = [cm.step(q[0]), cm.step(q[1])]
    with QemuBoard(trained.host.elf) as board, Link.open(board.url) as link:  # type: ignore[arg-type]
        hello = wait_hello(link)
        assert hello.next_step == 0 and hello.rx_capacity >= 256 and hello.history >= 2
        link.send(InputF32(0, tuple(tuple(float(v) for v in row) for row in raw)))  # two samples, one frame
        preds = [Pred.unpack(link.expect(FrameType.PRED).payload) for _ in range(2)]
        assert [p.step for p in preds] == [0, 1]
        assert all(np.array_equal(p.outputs, e) for p, e in zip(preds, expect, strict=True))
        link.send(Input(5, (tuple(int(v) for v in q[0]),)))  # step 5, but the board expects 2
        nak = parse_message(link.expect(FrameType.NAK))
        assert isinstance(nak, Nak) and (nak.reason, nak.step, nak.next_step) == (NakReason.GAP, 5, 2)
        link.send(InputS16(2, (tuple(int(v) for v in q[0]),)))  # int16 samples: this model's input is int8
        err = next_error(link)  # refused, and nothing ran
        assert (err.code, err.message) == (ErrorCode.UNSUPPORTED, "int8 input: send INPUT")
        assert err.rx_freed == link.tx_bytes
        link.send(InputF32(2, ((float("nan"), *raw[0, 1:].tolist()),)))  # refused, and nothing ran
        err = next_error(link)
        assert (err.code, err.frame_type, err.describe()) == (
            ErrorCode.NOT_FINITE,
            FrameType.INPUT_F32,
            "NOT_FINITE: input is NaN or infinite",
        )
        link.send(PredReq(1))  # a PRED lost on the way back is sent again from the history
        again = Pred.unpack(link.expect(FrameType.PRED).payload)
        assert again.step == 1 and again.outputs == preds[1].outputs
        link.send(PredReq(2))
        nak = parse_message(link.expect(FrameType.NAK))
        assert isinstance(nak, Nak) and (nak.reason, nak.next_step) == (NakReason.NOT_YET, 2)
        link.send(Reset(7))
        link.expect(FrameType.ACK)
        link.send(PredReq(1))  # before the RESET: gone
        nak = parse_message(link.expect(FrameType.NAK))
        assert isinstance(nak, Nak) and nak.reason == NakReason.EXPIRED and nak.next_step == 7
        garbage = b"\x05garbage\x00"
        link.port.write(garbage)  # one bad frame
        frames = link.read(2.0)
        errors = [parse_message(f) for f in frames if f.type == FrameType.ERROR]
        assert [e.code for e in errors] == [ErrorCode.BAD_FRAME]  # type: ignore[union-attr]
        link.send(StatsReq())
        stats = parse_message(link.expect(FrameType.STATS))
        assert isinstance(stats, Stats)
        assert (stats.frames_bad, stats.steps, stats.inputs_refused, stats.next_step) == (1, 2, 3, 7)
        assert stats.rx_freed == link.tx_bytes + len(
            garbage
        )  # every byte sent so far was taken, none dropped


def test_replay_streams_the_embedded_held_out_data(trained: Trained) -> None:
    _check_replay(trained)


def _check_replay(trained: Trained) -> None:
    """The replay firmware's first 300 PREDs equal the host kernel's on its 256 embedded held-out samples."""
    held = load_held_out(trained.export_dir)
    cm = CModel.from_generated(trained.export_dir)
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


def test_a_host_fed_firmware_carries_no_replay_data(trained: Trained) -> None:
    """`build` embeds held-out samples only for a firmware that boots into replay (or is asked to with
    --replay-steps): the default firmware is smaller by exactly the samples, and asked to replay it says how
    to get a firmware that can."""
    assert trained.host.sizes is not None and trained.replay.sizes is not None
    assert not list((trained.host.out_dir / "gen").glob("tl_replay.*"))
    model_data = [
        next(g.flash for g in b.sizes.groups if g.name == "model data")  # type: ignore[union-attr]
        for b in (trained.host, trained.replay)
    ]
    held = load_held_out(trained.export_dir)
    assert model_data[1] - model_data[0] == 256 * held.model.input_size
    with QemuBoard(trained.host.elf) as board, BoardStream(board.url, trained.export_dir) as s:  # type: ignore[arg-type]
        with pytest.raises(
            LinkError, match="embeds no replay data; build it with --source replay or --replay-steps"
        ):
            s.set_source(Source.REPLAY)


def test_replay_steps_are_checked_before_anything_is_written(trained: Trained, tmp_path: Path) -> None:
    for kwargs, message in (
        ({"replay": -1}, r"--replay-steps -1: give a number of samples >= 0"),
        ({"source": "replay", "replay": 0}, r"--source replay .* --replay-steps 0 embeds none"),
    ):
        with pytest.raises(TinyLSTMError, match=message):
            build_firmware(trained.export_dir, trained.board, tmp_path / "out", **kwargs)  # type: ignore[arg-type]
        assert not (tmp_path / "out").exists()
    window = load_held_out(trained.export_dir).model.meta.window
    assert window == 128  # the watch windows: 100 samples round up to one whole window
    build = build_firmware(trained.export_dir, trained.board, tmp_path / "out", replay=100)
    assert "#define TL_REPLAY_STEPS 128u" in (tmp_path / "out" / "gen" / "tl_replay.h").read_text()
    assert build.elf is not None


def test_other_model_is_refused(trained: Trained, tmp_path: Path) -> None:
    other = train_and_export(tmp_path, hidden=8, epochs=1, seed=1)
    refused = pytest.raises(
        TinyLSTMError, match=r"board runs model 0x[0-9a-f]{8} but .* holds model 0x[0-9a-f]{8}"
    )
    with QemuBoard(trained.host.elf) as board, Link.open(board.url) as link, refused:  # type: ignore[arg-type]
        run_parity(link, other, 10)


def _firmware_of(trained: Trained, export_dir: Path, name: str) -> Trained:
    """The host-fed and replay firmware of ``export_dir`` (the session's model exported again) for
    ``trained``'s board, in fw-``name`` and fw-``name``-replay."""
    root = trained.export_dir.parent / trained.board
    host = build_firmware(export_dir, trained.board, root / f"fw-{name}")
    replay = build_firmware(
        export_dir,
        trained.board,
        root / f"fw-{name}-replay",
        source="replay",
        defines={"TL_REPLAY_PERIOD_MS": "2"},
    )
    return Trained(export_dir, host, replay, trained.board)


@pytest.fixture(scope="module", params=EMULATED)
def wide(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Trained:
    """The session's trained watch model exported again with an int16 hidden state (so an int16 input), and
    its host-fed and replay firmware."""
    trained = trained_firmware(tmp_path_factory.getbasetemp(), request.param)
    return _firmware_of(trained, wide_export(trained), "h16")


def test_int16_hidden_state_firmware_bit_exact(wide: Trained) -> None:
    """An int16-h export (kernel built with -DTL_HIDDEN16 by `tinylstm build`): HELLO says 16, the held-out
    samples are int16 (INPUT_S16 frames), and 10,000 of them over the link equal the host's golden bit for
    bit."""
    held = load_held_out(wide.export_dir)
    assert held.model.hidden_bits == 16 and held.stream(1).dtype == np.int16
    assert "#define TL_MODEL_INPUT_BITS 16" in (wide.host.out_dir / "gen" / "tl_model.h").read_text()
    with QemuBoard(wide.host.elf) as board, Link.open(board.url) as link:  # type: ignore[arg-type]
        hello = wait_hello(link)
        assert (hello.hidden_bits, hello.model_hash) == (16, held.model.model_hash)
        report = run_parity(link, wide.export_dir, 10_000)
    assert report.passed and report.clean, report.render()
    assert report.steps == 10_000 and report.mismatches == 0


def test_int16_input_board_quantizes_floats_to_int16_and_refuses_int8_frames(wide: Trained) -> None:
    """INPUT_F32 on an int16-h board is quantized to int16 (tl_quantize_input_s16, as golden does); an INPUT
    frame (int8) is refused with ERROR UNSUPPORTED naming INPUT_S16, runs nothing, and a feeder that sends
    it (a host that takes the board for an int8 one) stops with the error counted."""
    model = load_held_out(wide.export_dir).model
    raw = np.asarray(
        [[0.5, -1.0, 9.81, 0.1, 0.0, -0.2], [30.0, -40.0, -9.7, 1e3, 0.3, -0.1]], dtype=np.float32
    )
    q = golden.quantize_input(model, raw)
    assert q.dtype == np.int16 and np.abs(q).max() > 127  # beyond int8: the int16 path is what ran
    expect, _, _ = golden.run(model, q[None])
    with QemuBoard(wide.host.elf) as board, Link.open(board.url) as link:  # type: ignore[arg-type]
        hello = wait_hello(link)
        link.send(InputF32(0, tuple(tuple(float(v) for v in row) for row in raw)))
        preds = [Pred.unpack(link.expect(FrameType.PRED).payload) for _ in range(2)]
        assert [p.step for p in preds] == [0, 1]
        assert np.array_equal([p.outputs for p in preds], expect[0])
        link.send(Input(2, (tuple(range(6)),)))
        err = next_error(link)
        assert (err.code, err.message) == (ErrorCode.UNSUPPORTED, "int16 input: send INPUT_S16")
        wrong = Feeder(link, dataclasses.replace(hello, hidden_bits=8), np.zeros((4, 6), dtype=np.int8))
        with pytest.raises(FeedError, match="UNSUPPORTED: int16 input: send INPUT_S16"):
            list(wrong.run())
        assert wrong.stats.board_errors == {"UNSUPPORTED": 1} and wrong.frame is Input
        too_wide = Feeder(link, hello, np.full((3, 6), 40_000))  # not int16 samples: refused before sending
        with pytest.raises(
            FeedError, match=r"samples 0\.\.2 are int64 .* takes int16 input \(INPUT_S16 frames\)"
        ):
            list(too_wide.run())
        assert too_wide.stats.frames_sent == 0
        link.send(StatsReq())
        stats = parse_message(link.expect(FrameType.STATS))
        assert isinstance(stats, Stats) and (stats.steps, stats.frames_bad) == (
            2,
            0,
        )  # the INPUTs ran nothing


def test_int16_replay_streams_the_embedded_held_out_data(wide: Trained) -> None:
    """An int16-h model's replay data is int16 (codegen/emit_replay.py), as its held-out samples are."""
    assert "const int16_t tl_replay_data" in (wide.replay.out_dir / "gen" / "tl_replay.c").read_text()
    _check_replay(wide)


@pytest.fixture(scope="module", params=EMULATED)
def random16(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> tuple[IntModel, FirmwareBuild]:
    """Firmware of a random int16-h model (full-range weights; `tinylstm build` of its export): an LSTM on the
    Cortex-M4, a GRU stacking 3 samples per step (the int16 stacking buffer) with a pooled readout on RV32."""
    board = request.param
    require_board_tools(board)
    cell, stack, readout = ("lstm", 1, "last") if board == "qemu-stm32f405" else ("gru", 3, "mean")
    model = random_int_model(np.random.default_rng(16), cell, 1, 6, 16, 5, 26, 40, 16, readout, stack)
    return _firmware_of_model(tmp_path_factory.mktemp(f"random16-{board}"), board, model)


def _firmware_of_model(root: Path, board: str, model: IntModel) -> tuple[IntModel, FirmwareBuild]:
    """``model`` and its firmware for ``board`` (`tinylstm build` of an export holding its model files: the
    integer model and its C source) under ``root``."""
    emit_c(model, root / "export")
    save_int_model(model, root / "export")
    return model, build_firmware(root / "export", board, root / "fw")


def _assert_full_range_stream(model: IntModel, fw: FirmwareBuild, seed: int) -> None:
    """6,000 samples drawn over the whole int16 range, fed as INPUT_S16 (the feeder picks it from HELLO):
    every output equals the golden reference's on the same stream."""
    xs = random_inputs(np.random.default_rng(seed), model, 6_000)
    assert xs.dtype == np.int16 and xs.min() < -32000 and xs.max() > 32000
    expect, _, _ = golden.run(model, xs[None])
    with QemuBoard(fw.elf) as board, Link.open(board.url) as link:  # type: ignore[arg-type]
        feeder = Feeder(link, wait_hello(link), xs)
        got = np.asarray([d.outputs for d in feeder.run()], dtype=np.int16)
    assert feeder.frame is InputS16 and feeder.stats.retries == 0
    assert got.shape == expect[0].shape and np.array_equal(got, expect[0])


def test_int16_input_full_range_long_stream_bit_exact_with_golden(
    random16: tuple[IntModel, FirmwareBuild],
) -> None:
    """An int16-h model's firmware over 6,000 full-range int16 samples (the 10,000-step held-out stream of
    test_int16_hidden_state_firmware_bit_exact is the long one)."""
    _assert_full_range_stream(*random16, seed=7)


@pytest.fixture(scope="module", params=EMULATED)
def x16(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Trained:
    """The session's trained watch model exported again with an int16 input on its int8 h (``--input-bits
    16``), and its host-fed and replay firmware."""
    trained = trained_firmware(tmp_path_factory.getbasetemp(), request.param)
    root = trained.export_dir.parent
    export_dir = root / "export-x16"
    if not export_dir.is_dir():
        export(ModelSource(str(root / "run" / CHECKPOINT_NAME)), export_dir, input_bits=16)
    return _firmware_of(trained, export_dir, "x16")


def test_int16_input_firmware_bit_exact(x16: Trained) -> None:
    """An int16-input export (`tinylstm build` passes -DTL_INPUT16): HELLO says an int8 h with the int16-input
    flag, the held-out samples are int16 (INPUT_S16 frames), 10,000 of them over the link equal the host's
    golden bit for bit, a float sample is quantized to int16 on the board, and an int8 INPUT is refused."""
    held = load_held_out(x16.export_dir)
    assert held.model.input16 and held.stream(1).dtype == np.int16
    header = (x16.host.out_dir / "gen" / "tl_model.h").read_text()
    assert "#define TL_MODEL_INPUT_BITS 16" in header and "#define TL_MODEL_HIDDEN_BITS 8" in header
    raw = np.asarray([[0.5, -1.0, 9.81, 0.1, 0.0, -0.2], [30.0, -40.0, -9.7, 1e3, 0.3, -0.1]], np.float32)
    q = golden.quantize_input(held.model, raw)
    assert q.dtype == np.int16 and np.abs(q).max() > 127
    with QemuBoard(x16.host.elf) as board, Link.open(board.url) as link:  # type: ignore[arg-type]
        hello = wait_hello(link)
        assert (hello.hidden_bits, hello.input16, hello.model_hash) == (8, True, held.model.model_hash)
        report = run_parity(link, x16.export_dir, 10_000)
        assert report.passed and report.clean, report.render()
        assert report.steps == 10_000 and report.mismatches == 0
        link.send(Reset())
        link.send(InputF32(0, tuple(tuple(float(v) for v in row) for row in raw)))
        preds = [Pred.unpack(link.expect(FrameType.PRED).payload) for _ in range(2)]
        assert np.array_equal([p.outputs for p in preds], golden.run(held.model, q[None])[0][0])
        link.send(Input(2, (tuple(range(6)),)))
        err = next_error(link)
        assert (err.code, err.message) == (ErrorCode.UNSUPPORTED, "int16 input: send INPUT_S16")


def test_int16_input_replay_streams_the_embedded_held_out_data(
    x16: Trained, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "const int16_t tl_replay_data" in (x16.replay.out_dir / "gen" / "tl_replay.c").read_text()
    _check_replay(x16)
    # `tinylstm stream` names the input the board's HELLO declares
    with QemuBoard(x16.replay.elf) as board:  # type: ignore[arg-type]
        assert main(["stream", "--port", board.url, "--count", "5", "--quiet"]) == 0
    hello = capsys.readouterr().out.splitlines()[0]
    assert hello.startswith("# board ") and "(int8 h, int16 input), " in hello, hello


@pytest.fixture(scope="module", params=EMULATED)
def random_x16(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> tuple[IntModel, FirmwareBuild]:
    """Firmware of a random int8-h model with an int16 input (full-range weights, layer 0's multipliers of
    MULT16_BITS): 3 LSTM layers on the Cortex-M4, 2 GRU layers stacking 3 int16 samples per step with a max
    readout on RV32."""
    board = request.param
    require_board_tools(board)
    m4 = board == "qemu-stm32f405"
    cell, layers, stack, readout = ("lstm", 3, 1, "last") if m4 else ("gru", 2, 3, "max")
    rng = np.random.default_rng(17)
    model = random_int_model(rng, cell, layers, 6, 16, 5, 26, 40, 8, readout, stack, input_bits=16)
    return _firmware_of_model(tmp_path_factory.mktemp(f"random-x16-{board}"), board, model)


def test_int16_input_on_int8_h_full_range_stream_bit_exact_with_golden(
    random_x16: tuple[IntModel, FirmwareBuild],
) -> None:
    """An int8-h model with an int16 input over 6,000 full-range int16 samples (INPUT_S16, from HELLO's
    flag)."""
    _assert_full_range_stream(*random_x16, seed=8)


def test_w16_layout_firmware_bit_exact(trained: Trained) -> None:
    """A w16 export builds (tinylstm build passes TL_LAYOUT_W16) and streams bit-exact: on the Cortex-M4
    this is the w16 SMLAD path in firmware."""
    root = trained.export_dir.parent
    export_dir = root / "export-w16"
    if not export_dir.is_dir():
        export(ModelSource(str(root / "run" / CHECKPOINT_NAME)), export_dir, layout="w16")
    fw = build_firmware(export_dir, trained.board, root / trained.board / "fw-w16")
    with QemuBoard(fw.elf) as board, Link.open(board.url) as link:  # type: ignore[arg-type]
        report = run_parity(link, export_dir, 2_000)
    assert report.passed and report.clean and report.mismatches == 0, report.render()


# (cell, readout, stack, layers, bidirectional) beside the shared fixture's LSTM with the mean readout: the
# other readouts, a stacked model, every other cell of the registry, and bidirectional window models
VARIANTS = [("lstm", "last", 1, 1, False), ("lstm", "max", 1, 1, False), ("lstm", "last", 5, 1, False)] + [
    (cell, "mean", 1, 1, False) for cell in CELLS if cell != "lstm"
]
VARIANTS += [("gru", "max", 5, 1, True), ("lstm", "mean", 1, 2, True)]  # the cheaper one on the slower QEMU
# each variant runs on one emulated board, the boards taken in turn: both run several (each a bidirectional
# one), the shared fixture's model and the tests above run on both, and every variant's kernel paths run on
# both cores in unicorn (Cortex-M4: test_readout.py, test_stacking.py, test_bidirectional.py; RV32IMC:
# test_riscv_kernel.py)
VARIANT_BOARDS = [EMULATED[k % len(EMULATED)] for k in range(len(VARIANTS))]
# parity steps per variant (the shared model runs 10,000: test_10k_held_out_steps_bit_exact)
VARIANT_STEPS = 1_000


def _variant_name(cell: str, readout: str, stack: int, layers: int, bidirectional: bool) -> str:
    return (
        f"{cell}-{readout}"
        + (f"-k{stack}" if stack > 1 else "")
        + (f"-x{layers}" if layers > 1 else "")
        + ("-bidir" if bidirectional else "")
    )


@pytest.mark.parametrize(
    "trained,cell,readout,stack,layers,bidirectional",
    [(board, *v) for board, v in zip(VARIANT_BOARDS, VARIANTS, strict=True)],
    ids=[f"{board}-{_variant_name(*v)}" for board, v in zip(VARIANT_BOARDS, VARIANTS, strict=True)],
    indirect=["trained"],
)
def test_model_variant_firmware_bit_exact(
    trained: Trained, cell: str, readout: str, stack: int, layers: int, bidirectional: bool
) -> None:
    """The shared fixture's watch model is an LSTM reading the mean of h over each window (given: at its
    3 epochs the recipe would cross-validate mean against max); the other readouts build and stream
    bit-exact too (csrc/tl_pool.c in firmware), and so do a stacked model (5 samples per step: 25 steps
    per 128-sample window, the last 3 samples held), a model of every other cell (a firmware links
    only its own cell, TL_ONLY_CELL) and bidirectional window models (the backward pass over the buffered
    window at each window's last sample, the window's answer in its last PRED)."""
    assert load_held_out(trained.export_dir).model.readout == "mean"
    root = trained.export_dir.parent
    name = _variant_name(cell, readout, stack, layers, bidirectional)
    export_dir = root / f"export-{name}"
    if not export_dir.is_dir():
        from tinylstm.trainer.data import load_dataset
        from tinylstm.trainer.train import TrainConfig, fit

        run = fit(  # a quarter of the windows and one epoch: the model only has to exist
            load_dataset("watch", hop=128),
            TrainConfig(
                cell=cell,
                hidden=16,
                layers=layers,
                epochs=1,
                readout=readout,
                stack=stack,
                bidirectional=bidirectional,
                progress=False,
            ),  # type: ignore[arg-type]
            root / f"run-{name}",
        )
        export(ModelSource(str(run.checkpoint_path)), export_dir)
    model = load_held_out(export_dir).model
    assert (model.cell, model.readout, model.stack, model.bidirectional) == (
        cell,
        readout,
        stack,
        bidirectional,
    )
    fw = build_firmware(export_dir, trained.board, root / trained.board / f"fw-{name}")
    with QemuBoard(fw.elf) as board, Link.open(board.url) as link:  # type: ignore[arg-type]
        report = run_parity(link, export_dir, VARIANT_STEPS)
    assert report.passed and report.clean and report.mismatches == 0, report.render()
    if bidirectional:  # `stream` labels the window's answer only, at its last sample
        window = model.window
        assert fw.window_bytes == window * model.input_size and fw.state_bytes == 2 * model.state_words
        held = load_held_out(export_dir)
        feed = np.concatenate([s[:window] for s in held.sequences[:3]])
        with QemuBoard(fw.elf) as board, BoardStream(board.url, export_dir) as s:  # type: ignore[arg-type]
            preds = list(s.predictions(feed=feed))
            assert s.hello is not None and s.hello.mode == Mode.WINDOW_END  # HELLO says when it answers
        assert [p.step for p in preds if p.answer] == [window - 1, 2 * window - 1, 3 * window - 1]
        assert all(p.label is None for p in preds if not p.answer)
        assert all(p.label in (model.meta.classes or []) for p in preds if p.answer)
        with QemuBoard(fw.elf) as board, BoardStream(board.url) as s:  # type: ignore[arg-type]
            bare = list(s.predictions(feed=feed))  # no export: the HELLO alone tells the answers apart
        assert [p.step for p in bare if p.answer] == [p.step for p in preds if p.answer]
        assert [p.raw for p in bare] == [p.raw for p in preds]
