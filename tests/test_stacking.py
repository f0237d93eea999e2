"""Input stacking (contract/stacking.py): k samples per recurrent step, the outputs between steps held.

golden == C through cffi (both weight layouts, int8 and int16 h, every readout) == the C blob reader ==
Cortex-M4 in unicorn (SMLAD and portable paths): every output and every state word (h, c, pool, the stacking
buffer, its phase and the step count) at every sample, with resets that fall inside a step. The float
reference holds outputs as the kernel does; the trainer's forward is that reference and its fake-quantized
forward (QAT) the integer model. The MicroPython fallback runs stacked models in
tests/test_stacking_micropython.py and the firmware over the link in QEMU in
tests/test_firmware.py::test_model_variant_firmware_bit_exact (lstm-last-k5)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from tinylstm.codegen import blob, golden
from tinylstm.codegen.quantize import IntModel
from tinylstm.codegen.random_models import random_inputs, random_int_model, random_quantized_model
from tinylstm.codegen.source import from_rnn
from tinylstm.codegen.spec import FloatModel, ModelMeta, float_forward
from tinylstm.contract.cells import CELLS
from tinylstm.contract.constants import MAX_INPUT, input_qmax, stack_bytes, state_words
from tinylstm.contract.stacking import check_stack, held_steps, stack_samples
from tinylstm.errors import TinyLSTMError
from tinylstm.host.cli.main import main
from tinylstm.host.targets.bridge import CModel
from tinylstm.trainer.models import TinyRNN
from tinylstm.trainer.recipe import STACK_MIN_STEPS, DataShape, choose_stack


def assert_c_equals_golden(m: IntModel, xq: np.ndarray, cm: CModel, resets: tuple[int, ...] = ()) -> None:
    """Every output and state word of ``cm`` equals golden at every sample; the state resets before each
    sample index in ``resets``."""
    state = golden.GoldenState.zeros(m, 1)
    for t, x in enumerate(xq):
        if t in resets:
            state = golden.GoldenState.zeros(m, 1)
            cm.reset()
        y_ref = golden.step(m, state, x[None])[0]
        y = cm.step(x)
        words = {
            "y": (y, y_ref),
            "h": (cm.h, state.h[0]),
            "c": (cm.c, state.c[0]),
            "pool": (cm.pool, state.pool[0] if cm.pool.size else cm.pool),
            "stack": (cm.stack_buffer, state.stack[0]),
            "phase/steps": (np.array([cm.phase, cm.steps]), np.array([state.phase, state.steps])),
        }
        for name, (got, want) in words.items():
            assert np.array_equal(got, want), f"C and golden {name} differ at sample {t}: {got} vs {want}"


CASES = [  # cell, layers, input, hidden, output, hidden bits, readout, stack
    ("lstm", 1, 3, 9, 2, 8, "last", 4),
    ("gru", 2, 2, 11, 3, 8, "mean", 3),
    ("lstm", 3, 5, 7, 2, 8, "max", 7),
    ("gru", 1, 1, 13, 4, 16, "last", 20),
    ("lstm", 2, 3, 6, 3, 16, "mean", 2),
    ("gru", 3, 4, 5, 2, 16, "max", 5),
]


@pytest.mark.parametrize("cell,layers,inp,hidden,out,bits,readout,stack", CASES)
def test_c_equals_golden_every_word(
    cell: str, layers: int, inp: int, hidden: int, out: int, bits: int, readout: str, stack: int
) -> None:
    """A full-range random model (saturation everywhere) and a calibrated one, 1,500 samples, resets inside a
    step: the C kernel (int8-h models in both weight layouts) and the C blob reader."""
    rng = np.random.default_rng(layers * 100 + stack)
    # shifts that leave the head and gates partly unsaturated (the defaults pin int8-h outputs at the rails)
    lo = 30 if bits == 8 else 26
    m = random_int_model(rng, cell, layers, inp, hidden, out, lo, 40, bits, readout, stack)
    if bits == 8:
        m.head_shift[:] = rng.integers(36, 41, out)
    assert len(np.unique(golden.run(m, random_inputs(rng, m, 1, 300))[0])) > 4
    xq = random_inputs(rng, m, 1500)
    xq[::97] = input_qmax(bits)
    resets = (stack * 40 + 1, 1111)
    layouts = ["w8", "w16"] if bits == 8 else ["w8"]
    for layout in layouts:
        assert_c_equals_golden(m, xq, CModel.from_int_model(m, layout=layout), resets)
    assert_c_equals_golden(m, xq, CModel.from_blob(blob.to_blob(m)), resets)
    x = np.sin(np.arange(1500)[:, None] / (5 + np.arange(inp))) * 2 + rng.standard_normal((1500, inp)) * 0.3
    cal = random_quantized_model(3, cell, layers, inp, hidden, out, x[None, :600], bits, readout, stack)
    assert_c_equals_golden(cal, golden.quantize_input(cal, x.astype(np.float32)), CModel.from_int_model(cal))


def test_held_outputs_and_the_first_step() -> None:
    """Between steps the output repeats the last step's, before the first step it is the head of zeros (the
    bias requantized), and a trailing part step changes nothing; the layers' state moves only at step ends."""
    rng = np.random.default_rng(7)
    m = random_int_model(rng, "lstm", 2, 3, 8, 4, readout="mean", stack=6)
    xq = rng.integers(-128, 128, (1, 6 * 9 + 4, 3)).astype(np.int8)
    y, _, tr = golden.run(m, xq, trace=True)
    zero_state = golden.GoldenState.zeros(m, 1)
    assert np.array_equal(y[0, :5], np.repeat(golden._head(m, zero_state.head_in), 5, axis=0))
    for s in range(9):
        end = 6 * s + 5
        held = y[0, end : end + 6]
        assert np.all(held == held[0]), f"outputs move inside step {s + 1}"
        assert np.all(tr["h"][0, end : end + 6] == tr["h"][0, end])
    assert held_steps(13, 6).tolist() == [0] * 5 + [1] * 6 + [2] * 2


@pytest.mark.parametrize("cell", list(CELLS))
def test_stacked_model_is_the_wide_model_on_stacked_samples(cell: str) -> None:
    """A stacked float model at each step's last sample equals the same weights run unstacked on the samples
    placed side by side (k * C channels): stacking changes only how samples enter, and the float reference
    holds the outputs between steps."""
    torch.manual_seed(1)
    net = TinyRNN(cell, 2, 5, 2, 3, readout="max", stack=4).double()
    meta = ModelMeta(input_mean=[0.0] * 2, input_std=[1.0] * 2)
    fm = from_rnn(net.rnn, net.head, meta, "max", 4)
    wide = FloatModel(fm.cell, fm.layers, fm.head_w, fm.head_b, ModelMeta([0.0] * 8, [1.0] * 8), "max")
    x = np.random.default_rng(0).standard_normal((2, 4 * 6 + 3, 2))
    y = float_forward(fm, x)["y"]
    y_wide = float_forward(wide, stack_samples(x, 4))["y"]
    assert np.allclose(y[:, 3::4][:, :6], y_wide)
    assert np.allclose(y[:, :3], fm.head_b) and np.allclose(y[:, -3:], y_wide[:, -1:])


@pytest.mark.parametrize("readout", ["last", "mean", "max"])
def test_trained_model_forward_is_the_float_reference(readout: str) -> None:
    """TinyRNN's stacked forward on a padded batch (a sequence shorter than one step included) equals
    float_forward at every valid sample of each sequence."""
    torch.manual_seed(0)
    net = TinyRNN("gru", 3, 6, 2, 4, readout=readout, stack=5).double()
    fm = from_rnn(net.rnn, net.head, ModelMeta(input_mean=[0.0] * 3, input_std=[1.0] * 3), readout, 5)
    lengths = torch.tensor([43, 17, 30, 3])
    x = torch.randn(4, 43, 3, dtype=torch.float64)
    with torch.no_grad():
        y = net(x, lengths).numpy()
    for b, n in enumerate(lengths.tolist()):
        assert np.allclose(y[b, :n], float_forward(fm, x[b : b + 1, :n].numpy())["y"][0], atol=1e-9)


@pytest.mark.parametrize("cell", list(CELLS))
def test_fake_quant_forward_stacks_like_the_kernel(cell: str) -> None:
    """The QAT forward of a stacked model (8 samples per step) gives the golden's outputs."""
    from test_readout import assert_fake_quant_matches_golden

    assert_fake_quant_matches_golden(cell, 2, "mean", 8, 800)


def test_state_words_blob_and_hash() -> None:
    """The buffer's words are in the state size (C == Python); the blob's byte 35 carries k (0 = 1 in blobs
    written before the field) and both readers run it; k is part of the model's identity, and an unstacked
    model keeps the hash it had before the field."""
    m = random_int_model(np.random.default_rng(3), "gru", 2, 3, 7, 2, readout="mean", stack=9)
    want = state_words(2, 7, 8, True, stack_bytes(9, 3, 8))
    assert CModel.from_int_model(m).state_words == m.state_words == want == state_words(2, 7, 8, True) + 14
    data = blob.to_blob(m)
    assert data[35] == 9 and blob.read_header(data)["stack"] == 9
    back = blob.from_blob(data)
    assert back.stack == 9 and back.input_size == 3 and back.model_hash == m.model_hash
    plain = random_int_model(np.random.default_rng(3), "gru", 2, 3, 7, 2)
    assert blob.to_blob(plain)[35] == 0 and blob.from_blob(blob.to_blob(plain)).stack == 1
    m1 = random_int_model(np.random.default_rng(3), "gru", 2, 3, 7, 2, stack=1)
    assert m1.model_hash == plain.model_hash != m.model_hash


def test_blob_stack_beyond_the_kernel_is_refused() -> None:
    m = random_int_model(np.random.default_rng(2), "lstm", 1, 100, 3, 1)
    data = bytearray(blob.to_blob(m))
    data[35] = 11  # 11 x 100 inputs > MAX_INPUT
    struct.pack_into("<I", data, 8, zlib.crc32(bytes(data[blob.CRC_START :])))
    with pytest.raises(TinyLSTMError, match="stacking 11 samples of 100 channels"):
        blob.from_blob(bytes(data))
    with pytest.raises(TinyLSTMError, match="TL_BLOB_ERR|TL_ERR_MODEL"):
        CModel.from_blob(bytes(data))


def test_stack_limits_are_one_line_errors() -> None:
    check_stack(255, 4)
    for stack, inputs, match in [
        (0, 3, "use 1 \\(none\\) to 255"),
        (256, 1, "to 255"),
        (200, 6, "use --stack 170"),
    ]:
        with pytest.raises(TinyLSTMError, match=match):
            check_stack(stack, inputs)
    check_stack(42, 6, 16)  # an int16 input's layer 0 reads at most MAX_INPUT16 = 256 values
    with pytest.raises(TinyLSTMError, match="more than an int16 input's 256: use --stack 42 or less"):
        check_stack(43, 6, 16)
    check_stack(42, 6, 8, input16=True)  # so does an int8-h model's with an int16 input
    with pytest.raises(
        TinyLSTMError, match="256: use --stack 42 or less \\(or an int8 hidden state and input\\)"
    ):
        check_stack(43, 6, 8, input16=True)
    with pytest.raises(TinyLSTMError, match="input stacking of 0"):
        TinyRNN("lstm", 2, 4, 1, 1, stack=0)
    assert MAX_INPUT // 6 == 170


def test_recipe_stacks_long_windows_only() -> None:
    long = DataShape(100, 100 * 1460, True, True, 1460, channels=1)
    assert choose_stack(None, long)[0] == 22
    assert choose_stack(None, DataShape(100, 100 * 1460, True, True, 1460, channels=200))[0] == 5
    assert choose_stack(None, DataShape(300, 300 * 128, True, True, 128))[0] == 1
    assert choose_stack(None, DataShape(3, 3000, False, False, STACK_MIN_STEPS * 4))[0] == 1  # stream
    assert choose_stack(3, DataShape(3, 30, True, True, 10))[0] == 3
    with pytest.raises(TinyLSTMError, match="makes a 1200-value step"):
        choose_stack(200, DataShape(3, 30, True, True, 10, channels=6))


def test_cli_refuses_a_bad_stack(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for value, match in [("0", "stack=0 must be >= 1"), ("300", "input stacking of 300 samples")]:
        out = tmp_path / value
        assert main(["train", "--data", "watch", "--stack", value, "--quiet", "--out", str(out)]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and match in lines[0], lines
        assert not out.exists()


M4_CASES = [  # cell, layers, input, hidden, output, hidden bits, readout, stack: odd widths for the tails
    ("lstm", 1, 3, 32, 4, 8, "mean", 7),
    ("gru", 2, 2, 19, 5, 8, "last", 3),
    ("lstm", 3, 1, 13, 3, 16, "max", 10),
    ("gru", 1, 3, 33, 2, 16, "mean", 4),
]


@pytest.mark.parametrize("dsp", [True, False], ids=["dsp", "portable"])
@pytest.mark.parametrize("cell,layers,inp,hidden,out,bits,readout,stack", M4_CASES)
def test_m4_unicorn_equals_golden(
    tmp_path: Path,
    dsp: bool,
    cell: str,
    layers: int,
    inp: int,
    hidden: int,
    out: int,
    bits: int,
    readout: str,
    stack: int,
) -> None:
    """Cortex-M4 code (SMLAD and portable paths) in unicorn: every output and h/c word of 2,000 samples."""
    from test_readout import assert_m4_equals_golden

    rng = np.random.default_rng(hidden + stack)
    m = random_int_model(rng, cell, layers, inp, hidden, out, 18, 40, bits, readout, stack)
    assert_m4_equals_golden(tmp_path, dsp, m, rng, 2000)
