"""Bidirectional window models (docs/integer-contract.md, "Bidirectional window models"): a backward stack
runs over the window's buffered inputs at its last sample, and the head reads both readouts.

golden == C through cffi (both weight layouts) == Cortex-M4 in unicorn (SMLAD and portable paths): every
output and every state word (forward and backward h/c, both pools, the head's input, the window buffer and
its count) at every sample of streams of several windows, with resets inside a window; random full-range
models (saturation everywhere) and calibrated ones, every cell, 1-3 layers, every readout, with and without
stacking. The trainer's forward is the float reference; the firmware over the link runs in QEMU in
tests/test_firmware.py::test_model_variant_firmware_bit_exact (the *-bidir variants), the blob readers and
the MicroPython fallback in tests/test_blob.py and the MicroPython tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tinylstm.codegen import golden
from tinylstm.codegen.emit_c import LAYER_STRUCT_BYTES, build_settings, model_data_bytes
from tinylstm.codegen.quantize import IntModel
from tinylstm.codegen.random_models import random_int_model, random_quantized_model
from tinylstm.codegen.source import from_rnn
from tinylstm.codegen.spec import FloatModel, ModelMeta, float_forward
from tinylstm.contract.cells import CELLS
from tinylstm.contract.constants import bidir_words, stack_bytes, state_words
from tinylstm.errors import TinyLSTMError
from tinylstm.host.cli.main import main
from tinylstm.host.targets.bridge import CModel
from tinylstm.trainer.models import TinyRNN


def assert_c_equals_golden(m: IntModel, xq: np.ndarray, cm: CModel, resets: tuple[int, ...] = ()) -> None:
    """Every output and state word of ``cm`` equals golden's at every sample; both reset before each sample
    index in ``resets``."""
    state = golden.GoldenState.zeros(m, 1)
    for t, x in enumerate(xq):
        if t in resets:
            state.reset(m)
            cm.reset()
        y_ref = golden.step(m, state, x[None])[0]
        y = cm.step(x)
        back = cm.backward_state()
        words = {
            "y": (y, y_ref),
            "h": (cm.h, state.h[0]),
            "c": (cm.c, state.c[0]),
            "pool": (cm.pool, state.pool[0] if cm.pool.size else cm.pool),
            "hb": (back["hb"], state.hb[0]),
            "cb": (back["cb"], state.cb[0]),
            "pool_b": (back["pool_b"], state.pool_b[0] if back["pool_b"].size else back["pool_b"]),
            "head2": (back["head2"], state.head2[0]),
            "window": (back["window"], state.window[0]),
            "counts": (
                np.array([back["wpos"][0], cm.steps, cm.phase]),
                np.array([state.wpos, state.steps, state.phase]),
            ),
        }
        for name, (got, want) in words.items():
            assert np.array_equal(got, want), f"C and golden {name} differ at sample {t}: {got} vs {want}"


CASES = [  # cell, layers, input, hidden, output, readout, stack, window
    ("lstm", 1, 3, 9, 2, "last", 1, 17),
    ("gru", 2, 2, 11, 3, "mean", 3, 20),  # 2 samples past the 6 steps: only the forward-held readout
    ("rnn", 3, 5, 7, 2, "max", 1, 9),
    ("lstm", 2, 4, 5, 4, "max", 4, 16),
    ("gru", 1, 1, 13, 2, "last", 1, 1),  # a one-sample window
    ("rnn", 1, 3, 6, 3, "mean", 2, 7),
]


@pytest.mark.parametrize("cell,layers,inp,hidden,out,readout,stack,window", CASES)
def test_c_equals_golden_every_word(
    cell: str, layers: int, inp: int, hidden: int, out: int, readout: str, stack: int, window: int
) -> None:
    """A full-range random model and a calibrated one, streams of several windows (the kernel starts the next
    window itself) with resets inside a window: the C kernel in both weight layouts."""
    rng = np.random.default_rng(layers * 100 + window)
    m = random_int_model(
        rng, cell, layers, inp, hidden, out, 30, 40, readout=readout, stack=stack, window=window
    )
    m.head_shift[:] = rng.integers(36, 41, out)  # outputs off the rails, so a wrong head input shows
    n = window * 7 + 3
    xq = rng.integers(-128, 128, (n, inp)).astype(np.int8)
    xq[::97] = 127
    resets = (window * 2 + window // 2, window * 5)
    for layout in ("w8", "w16"):
        assert_c_equals_golden(m, xq, CModel.from_int_model(m, layout=layout), resets)
    x = np.sin(np.arange(n)[:, None] / (5 + np.arange(inp))) * 2 + rng.standard_normal((n, inp)) * 0.3
    windows = np.stack([x[k * window : (k + 1) * window] for k in range(6)])
    cal = random_quantized_model(
        3, cell, layers, inp, hidden, out, windows, 8, readout, stack, bidirectional=True
    )
    assert cal.window == window and len(cal.backward) == layers
    assert_c_equals_golden(cal, golden.quantize_input(cal, x.astype(np.float32)), CModel.from_int_model(cal))


def test_the_answer_comes_at_the_window_end() -> None:
    """Before a window's last sample the output is the head of zeros (its bias requantized); at it, the head
    of [v_f ; v_b]; the next sample starts the next window from a zero state, so every window's answer is the
    one it gets alone."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((8, 10, 3))
    m = random_quantized_model(1, "lstm", 2, 3, 8, 4, x, readout="mean", bidirectional=True)
    xq = golden.quantize_input(m, x[:3].reshape(1, 30, 3).astype(np.float32))
    y, _, _ = golden.run(m, xq)
    blank = golden._head(m, np.zeros((1, 16), dtype=np.int64))[0]
    for k in range(3):
        w = y[0, 10 * k : 10 * k + 10]
        assert np.all(w[:-1] == blank)
        alone, _, _ = golden.run(m, xq[:, 10 * k : 10 * k + 10])
        assert np.array_equal(w, alone[0])
    assert len({tuple(y[0, 10 * k + 9]) for k in range(3)}) == 3


def test_the_backward_readout_reads_the_window_reversed() -> None:
    """The backward stack is the forward arithmetic run on the window's steps last first: a model whose
    backward layers are its forward ones answers a reversed window with its two halves swapped."""
    rng = np.random.default_rng(9)
    m = random_int_model(rng, "gru", 1, 2, 6, 3, 30, 40, readout="max", window=12)
    m.backward = [m.layers[0]]
    xq = rng.integers(-128, 128, (1, 12, 2)).astype(np.int8)
    state = golden.GoldenState.zeros(m, 1)
    golden.run(m, xq, state)
    state_r = golden.GoldenState.zeros(m, 1)
    golden.run(m, xq[:, ::-1], state_r)
    assert np.array_equal(state.head2[0, :6], state_r.head2[0, 6:])
    assert np.array_equal(state.head2[0, 6:], state_r.head2[0, :6])


M4_CASES = [  # cell, layers, input, hidden, output, readout, stack, window: odd widths for the tails
    ("lstm", 2, 3, 19, 4, "mean", 1, 40),
    ("gru", 1, 2, 33, 5, "max", 3, 31),
    ("rnn", 3, 5, 13, 3, "last", 1, 25),
]


@pytest.mark.parametrize("dsp", [True, False], ids=["dsp", "portable"])
@pytest.mark.parametrize("cell,layers,inp,hidden,out,readout,stack,window", M4_CASES)
def test_m4_unicorn_equals_golden(
    tmp_path: Path,
    dsp: bool,
    cell: str,
    layers: int,
    inp: int,
    hidden: int,
    out: int,
    readout: str,
    stack: int,
    window: int,
) -> None:
    """Cortex-M4 code (SMLAD and portable paths) in unicorn, built as a firmware of the model is (only its
    cell, readout and the backward pass): every output and h/c word of both directions, 2,000 samples."""
    from test_readout import assert_m4_equals_golden

    rng = np.random.default_rng(hidden + window)
    m = random_int_model(
        rng, cell, layers, inp, hidden, out, 18, 40, readout=readout, stack=stack, window=window
    )
    assert "TL_NO_BIDIR" not in build_settings(m)
    assert_m4_equals_golden(tmp_path, dsp, m, rng, 2000)


@pytest.mark.parametrize("cell", list(CELLS))
def test_trained_model_forward_is_the_float_reference(cell: str) -> None:
    """TinyRNN's bidirectional forward equals float_forward at every sample of a whole window (stacked, with
    a trailing part step), and at each shorter (augmentation-cropped) sequence's last sample it answers that
    sequence alone."""
    torch.manual_seed(0)
    net = TinyRNN(cell, 3, 6, 2, 4, readout="mean", stack=3, bidirectional=True).double()
    meta = ModelMeta(input_mean=[0.0] * 3, input_std=[1.0] * 3, window=20)
    fm = from_rnn(net.rnn, net.head, meta, "mean", 3, net.rnn_backward)
    x = torch.randn(3, 20, 3, dtype=torch.float64)
    with torch.no_grad():
        y = net(x).numpy()
        cropped = net(x, torch.tensor([20, 14, 9])).numpy()
    assert np.allclose(y, float_forward(fm, x.numpy())["y"], atol=1e-9)
    assert np.allclose(cropped[0], y[0])
    for b, n in ((1, 14), (2, 9)):
        alone = dict(vars(fm))
        alone["meta"] = ModelMeta(input_mean=[0.0] * 3, input_std=[1.0] * 3, window=n)
        want = float_forward(type(fm)(**alone), x[b : b + 1, :n].numpy())["y"][0, -1]
        assert np.allclose(cropped[b, n - 1], want, atol=1e-9)


def test_state_words_sizes_and_hash() -> None:
    """The state (C == Python) holds the backward stack, its pool, the head's 2H input and the window's W * C
    bytes; the model data counts the backward layers; the window and the backward weights are part of the
    model's identity."""
    m = random_int_model(np.random.default_rng(3), "lstm", 2, 3, 7, 2, readout="mean", stack=2, window=50)
    plain = state_words(2, 7, 8, True, stack_bytes(2, 3, 8))
    want = state_words(2, 7, 8, True, stack_bytes(2, 3, 8), 150)
    assert want == plain + bidir_words(2, 7, 150, True) == plain + 14 + (14 + 14 + 150 + 1) // 2 + 14
    assert CModel.from_int_model(m).state_words == m.state_words == want
    uni = random_int_model(np.random.default_rng(3), "lstm", 2, 3, 7, 2, readout="mean", stack=2)
    backward = sum(
        L.weights.size
        + 4 * (L.bias.size + L.mult.size)
        + L.shift.size
        + L.scale_exp.size
        + LAYER_STRUCT_BYTES
        for L in m.backward
    )
    assert model_data_bytes(m) - model_data_bytes(uni) == backward + 2 * 7  # and the head's second half
    other = random_int_model(np.random.default_rng(3), "lstm", 2, 3, 7, 2, readout="mean", stack=2, window=51)
    assert other.model_hash != m.model_hash and "TL_NO_BIDIR" in build_settings(uni)


def test_bad_models_are_refused_in_one_line() -> None:
    rng = np.random.default_rng(1)
    data = rng.standard_normal((4, 10, 2))
    with pytest.raises(TinyLSTMError, match="--hidden-bits 8"):
        random_quantized_model(0, "gru", 1, 2, 4, 2, data, 16, bidirectional=True)
    with pytest.raises(TinyLSTMError, match="windows of one length, 5-65535 samples"):
        random_quantized_model(0, "gru", 1, 2, 4, 2, data[:, :4], stack=5, bidirectional=True)
    fm_meta = ModelMeta(input_mean=[0.0] * 2, input_std=[1.0] * 2, mode="stream", window=8)
    net = TinyRNN("lstm", 2, 4, 1, 2, bidirectional=True)
    with pytest.raises(TinyLSTMError, match="classifies windows"):
        from_rnn(net.rnn, net.head, fm_meta, backward=net.rnn_backward)


def _write_ts(path: Path, lengths: list[int], task: str = "@classLabel true a b") -> Path:
    rng = np.random.default_rng(0)
    rows = [
        ",".join(f"{v:.3f}" for v in rng.standard_normal(n)) + (":0.5" if "targetLabel" in task else ":a")
        for n in lengths
    ]
    header = f"@problemName toy\n@timeStamps false\n@missing false\n@univariate true\n{task}\n@data\n"
    path.write_text(header + "\n".join(rows * 4) + "\n")
    return path


@pytest.mark.parametrize(
    "data,extra,match",
    [
        ("watch", ["--qat"], "quantization-aware training of a bidirectional"),
        ("variable", [], "needs windows of one length, but 'toy' has lengths 9-12"),
        ("regression", [], "is for window classification"),
    ],
)
def test_cli_refuses_what_cannot_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: str, extra: list[str], match: str
) -> None:
    """One line, exit 2, nothing written, before any training."""
    if data == "variable":
        data = str(_write_ts(tmp_path / "toy.ts", [9, 12, 10]))
    elif data == "regression":
        data = str(_write_ts(tmp_path / "toy.ts", [10, 10, 10], "@classLabel false\n@targetLabel true"))
    out = tmp_path / "run"
    assert main(["train", "--data", data, "--bidirectional", *extra, "--quiet", "--out", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and match in lines[0], lines
    assert not out.exists()


def test_export_refuses_an_int16_hidden_state(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A bidirectional checkpoint exported with --hidden-bits 16: one line, exit 2, nothing written."""
    from tinylstm.trainer.data import load_dataset
    from tinylstm.trainer.train import TrainConfig, fit

    ds = load_dataset("watch", hop=512)
    run = fit(ds, TrainConfig(hidden=4, epochs=1, bidirectional=True, progress=False), tmp_path / "run")
    assert any(r.startswith("bidirectional (given)") for r in run.metrics["recipe"]["reasons"])
    out = tmp_path / "export"
    assert main(["export", str(run.checkpoint_path), "--hidden-bits", "16", "--out", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "--hidden-bits 8" in lines[0], lines
    assert not out.exists()


def test_export_chooses_the_input_range_on_the_window_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The input range is chosen by comparing the integer model's outputs with the float model's where the
    task reads them: for a bidirectional model the window's last sample, so the compared sequences stay whole
    even when the window is not a whole number of stacked steps (20 samples, 3 per step), and the ranges'
    answers differ there."""
    import dataclasses

    from tinylstm.codegen import input_range
    from tinylstm.codegen.quantize import calibrate, quantize

    torch.manual_seed(2)
    net = TinyRNN("gru", 2, 6, 1, 3, readout="max", stack=3, bidirectional=True).double()
    meta = ModelMeta(input_mean=[0.0] * 2, input_std=[1.0] * 2, window=20)
    fm = from_rnn(net.rnn, net.head, meta, "max", 3, net.rnn_backward)
    x = list(np.random.default_rng(0).standard_normal((16, 20, 2)))
    assert len(input_range.subsample(x, 3)[0]) == 18  # a unidirectional model's comparison: whole steps
    cal = calibrate(fm, x)
    errors = {
        input_range.output_error(
            fm, quantize(fm, dataclasses.replace(cal, input_absmax=cal.input_absmax * f)), x
        )
        for f in input_range.RANGE_FACTORS
    }
    assert len(errors) > 1
    lengths: list[set[int]] = []
    compared: list[IntModel] = []

    class Spy(input_range.FloatReference):
        def __init__(self, fm: FloatModel, seqs: list[np.ndarray]) -> None:
            lengths.append({len(s) for s in seqs})
            super().__init__(fm, seqs)

        def error(self, m: IntModel) -> input_range.OutputError:
            compared.append(m)
            return super().error(m)

    monkeypatch.setattr(input_range, "FloatReference", Spy)
    input_range.choose_input_range(fm, cal, x, 8)
    assert lengths == [{20}]  # the float model runs once, on whole windows
    assert len(compared) == len(input_range.candidate_ranges(cal, x)) >= len(input_range.RANGE_FACTORS)


def test_a_window_the_board_cannot_hold_is_refused_before_the_build() -> None:
    """build's fit check counts the window's inputs in the state: 60,000 samples of 3 channels (176 KB) do not
    fit the STM32F405's 128 KB of RAM, and the error says how much of it is the window and what to change."""
    from tinylstm.host.boards import get_board
    from tinylstm.host.boards.fit import check_fits

    m = random_int_model(np.random.default_rng(0), "lstm", 1, 3, 8, 2, window=60_000)
    assert m.state_words * 2 > 180_000
    with pytest.raises(TinyLSTMError, match="180000 B of it the bidirectional window's inputs.*--window"):
        check_fits(m, get_board("stm32f405"), 256, 0)
    check_fits(
        random_int_model(np.random.default_rng(0), "lstm", 1, 3, 8, 2, window=6_000),
        get_board("stm32f405"),
        256,
        0,
    )
