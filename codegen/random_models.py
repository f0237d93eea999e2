"""Random integer and float models: the worst cases of the kernel parity tests, and the models of the
kernel and host benchmarks (one home for both, importable as tinylstm.codegen.random_models)."""

from __future__ import annotations

import numpy as np
import torch

from tinylstm.codegen.quantize import Calibration, IntLayer, IntModel, calibrate, quantize
from tinylstm.codegen.spec import FloatLayer, FloatModel, ModelMeta
from tinylstm.contract import qmath
from tinylstm.contract.cells import by_torch_module, cell_type
from tinylstm.contract.constants import (
    BIAS_LIMIT,
    HIDDEN16_BITS,
    HIDDEN_BITS,
    INPUT16_BITS,
    MULT16_BITS,
    MULT_BITS,
    SHIFT_MAX,
    input_qmax,
)


def random_inputs(rng: np.random.Generator, model: IntModel, *shape: int) -> np.ndarray:
    """Model inputs [*shape, input_size] drawn over the whole range of the model's input type (int8, or
    int16: IntModel.input_bits)."""
    top = input_qmax(model.input_bits)
    return rng.integers(-top - 1, top + 1, (*shape, model.input_size)).astype(model.input_dtype)


def random_int_model(
    rng: np.random.Generator,
    cell: str,
    layers: int,
    inp: int,
    hidden: int,
    out: int,
    shift_lo: int = 18,
    shift_hi: int = 34,
    hidden_bits: int = HIDDEN_BITS,
    readout: str = "last",
    stack: int = 1,
    window: int = 0,
    input_bits: int = 0,
) -> IntModel:
    """Integer model with full-range int8 weights and multipliers that drive gates into
    saturation as well as into the tables' middle: the worst case for overflow and rounding.
    With ``hidden_bits`` 16 the gate multipliers have MULT16_BITS bits, the shifts move with the larger
    accumulators (h 2^8 larger, M 2^6 smaller: +2; the head: +10) and bias magnitudes reach BIAS_LIMIT.
    ``stack`` > 1: layer 0 reads ``stack`` samples of ``inp`` channels per step (contract/stacking.py).
    ``window`` > 0: a bidirectional window model of that many samples, with as many random backward layers.
    ``input_bits`` 16 with an int8 h: an int16 input, whose layer 0 sums in int64 as an int16-h layer does
    (its multipliers, shifts and biases drawn as above)."""
    c = cell_type(cell)
    G = c.gates
    wide = hidden_bits == HIDDEN16_BITS
    input16 = input_bits == INPUT16_BITS and not wide

    def mults(n: int, bits: int, extra: int) -> tuple[np.ndarray, np.ndarray]:
        return (
            rng.integers(1 << (bits - 1), (1 << bits) - 1, n, dtype=np.int64).astype(np.int32),
            # inside the kernel's range: tl_model_check refuses a shift above SHIFT_MAX
            rng.integers(min(shift_lo + extra, SHIFT_MAX), min(shift_hi + extra, SHIFT_MAX + 1), n).astype(
                np.int8
            ),
        )

    int_layers = []
    for k in range(layers * (2 if window else 1)):
        n = k % layers
        width = inp * stack if n == 0 else hidden
        sum64 = wide or (input16 and k == 0)  # the int64 row sums
        mult, shift = mults(G * hidden, MULT16_BITS if sum64 else MULT_BITS, 2 if sum64 else 0)
        blim = BIAS_LIMIT if sum64 else 1 << 22
        int_layers.append(
            IntLayer(
                input_size=width,
                hidden_size=hidden,
                weights=rng.integers(-128, 128, (G * hidden, width + hidden)).astype(np.int8),
                bias=rng.integers(-blim, blim + 1, G * hidden).astype(np.int32),
                bias_hn=rng.integers(-blim, blim + 1, hidden).astype(np.int32) if c.bias_hn else None,
                mult=mult,
                shift=shift,
                cell_frac=int(rng.integers(0, 15)) if c.cell_state else 0,
                scale_exp=rng.integers(-4, 5, G * hidden).astype(np.int8),
                hidden_bits=hidden_bits,
            )
        )
    head_mult, head_shift = mults(out, MULT_BITS, 10 if wide else 0)
    return IntModel(
        cell=cell,
        layers=int_layers[:layers],
        head_w=rng.integers(-128, 128, (out, hidden * (2 if window else 1))).astype(np.int8),
        head_b=rng.integers(-(1 << 20), 1 << 20, out).astype(np.int32),
        head_mult=head_mult,
        head_shift=head_shift,
        output_scale=1.0 / 4096,
        input_mean=rng.standard_normal(inp).astype(np.float32),
        input_mul=(rng.random(inp) * 40 + 1).astype(np.float32),
        input_scale=0.03,
        act_table=qmath.make_tanh_table().astype(np.int16),
        meta=ModelMeta(input_mean=[0.0] * inp, input_std=[1.0] * inp, window=window or None),
        calibration=Calibration(1.0, [1.0] * len(int_layers), 1.0, 0),
        readout=readout,
        stack=stack,
        backward=int_layers[layers:],
        input16=input16,
    )


def float_model_from_torch(rnn: torch.nn.Module, head: torch.nn.Linear, meta: ModelMeta) -> FloatModel:
    cell = by_torch_module(rnn)
    assert cell is not None and isinstance(rnn, torch.nn.RNNBase)
    layers = [
        FloatLayer(
            *(
                getattr(rnn, f"{w}_l{k}").detach().double().numpy()
                for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
            )
        )
        for k in range(int(rnn.num_layers))
    ]
    return FloatModel(
        cell.name, layers, head.weight.detach().double().numpy(), head.bias.detach().double().numpy(), meta
    )


def random_quantized_model(
    seed: int,
    cell: str,
    layers: int,
    inp: int,
    hidden: int,
    out: int,
    data: np.ndarray,
    hidden_bits: int = HIDDEN_BITS,
    readout: str = "last",
    stack: int = 1,
    bidirectional: bool = False,
    input_bits: int | None = None,
) -> IntModel:
    """A PyTorch-initialised float model quantized through calibration (the percentile input range; export
    also chooses among narrower ones: codegen/input_range.py). ``bidirectional``: a window classifier whose
    window is ``data``'s length [B, T, C], with a second, backward stack."""
    torch.manual_seed(seed)
    rnn = cell_type(cell).torch_class()(inp * stack, hidden, layers, batch_first=True)
    head = torch.nn.Linear(hidden * (2 if bidirectional else 1), out)
    meta = ModelMeta(
        input_mean=[0.0] * inp, input_std=[1.0] * inp, window=data.shape[1] if bidirectional else None
    )
    fm = float_model_from_torch(rnn, head, meta)
    if bidirectional:
        back = cell_type(cell).torch_class()(inp * stack, hidden, layers, batch_first=True)
        fm.backward = float_model_from_torch(back, torch.nn.Linear(hidden, out), meta).layers
    fm.readout = readout
    fm.stack = stack
    return quantize(fm, calibrate(fm, list(data)), hidden_bits, input_bits)
