"""numpy golden reference of the integer kernel: bit-exact with csrc/, batched over streams.

Built only from ``contract.qmath`` and the cells' integer steps (``contract.cells``); the C kernel must
reproduce every output and every state word of :func:`step`, step for step.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from tinylstm.codegen.quantize import IntLayer, IntModel
from tinylstm.contract import qmath
from tinylstm.contract.cells import CellType, cell_type
from tinylstm.contract.constants import input_qmax
from tinylstm.contract.readouts import INT32_MAX, IntUpdate, readout
from tinylstm.contract.stacking import hold
from tinylstm.errors import TinyLSTMError


@dataclass
class GoldenState:
    """Recurrent state of ``B`` independent streams: h int8 Q0.7 or int16 Q0.15 (the model's hidden_bits),
    c int16 (cells with a cell state)."""

    h: np.ndarray  # int64 [B, L, H]
    c: np.ndarray  # int64 [B, L, H]; zeros for cells without a cell state
    pool: np.ndarray  # int64 [B, H]: a pooled readout's int32 words (contract/readouts.py)
    # int64 [B, k*C]: a stacked model's inputs of the step being filled (contract/stacking.py)
    stack: np.ndarray
    head_in: np.ndarray  # int64 [B, H]: what the head read at the last step (zeros after the reset)
    gates: np.ndarray  # int64 [B, L, G, H]: the gate activations of the last step (held like the outputs)
    # a bidirectional model's (docs/integer-contract.md, "Bidirectional window models"); empty otherwise:
    hb: np.ndarray  # int64 [B, L, H]: the backward layers' h after the last window's backward pass
    cb: np.ndarray  # int64 [B, L, H]: their c (cells with a cell state)
    pool_b: np.ndarray  # int64 [B, H]: the backward pool
    head2: np.ndarray  # int64 [B, 2H]: what the head reads, [v_f ; v_b] at the window's end, zeros before
    window: np.ndarray  # int64 [B, W*C]: the window's inputs
    steps: int = 0  # recurrent steps since the reset (tl_state_t.steps)
    phase: int = 0  # samples in ``stack`` (tl_state_t.phase)
    wpos: int = 0  # samples in ``window`` (tl_state_t.wpos)

    @classmethod
    def zeros(cls, model: IntModel, batch: int) -> GoldenState:
        shape = (batch, model.num_layers, model.hidden_size)
        back = (batch, len(model.backward), model.hidden_size)
        bidir = model.bidirectional
        return cls(
            np.zeros(shape, dtype=np.int64),
            np.zeros(shape, dtype=np.int64),
            np.zeros((batch, model.hidden_size), dtype=np.int64),
            np.zeros((batch, model.stack * model.input_size if model.stack > 1 else 0), dtype=np.int64),
            np.zeros((batch, model.hidden_size), dtype=np.int64),
            np.zeros((batch, model.num_layers, model.gates, model.hidden_size), dtype=np.int64),
            np.zeros(back, dtype=np.int64),
            np.zeros(back, dtype=np.int64),
            np.zeros((batch, model.hidden_size if bidir else 0), dtype=np.int64),
            np.zeros((batch, model.head_width if bidir else 0), dtype=np.int64),
            np.zeros((batch, model.window * model.input_size), dtype=np.int64),
        )

    def reset(self, model: IntModel) -> None:
        """Zero every word, as tl_reset does."""
        fresh = GoldenState.zeros(model, self.h.shape[0])
        self.__dict__.update(fresh.__dict__)


@dataclass
class BackwardSteps:
    """A bidirectional model's backward pass as it runs at the window's last sample, its S = W // k steps in
    the order they run (the window's last step first): every layer's Q0.15 gate activations and h (what
    ``run``'s trace records; the state keeps only the last step's)."""

    gates: np.ndarray  # int64 [B, S, L, G, H]
    h: np.ndarray  # int64 [B, S, L, H]

    @classmethod
    def zeros(cls, model: IntModel, batch: int) -> BackwardSteps:
        shape = (batch, model.window // model.stack, len(model.backward))
        return cls(
            np.zeros((*shape, model.gates, model.hidden_size), dtype=np.int64),
            np.zeros((*shape, model.hidden_size), dtype=np.int64),
        )

    def in_time_order(self, model: IntModel) -> tuple[np.ndarray, np.ndarray]:
        """The gates and h per sample of the window [B, W, L, ...], each step's at the samples of the step it
        read, held as the forward layers' are (contract/stacking.py)."""
        w, k = model.window, model.stack
        return hold(self.gates[:, ::-1], w, k), hold(self.h[:, ::-1], w, k)


def quantize_input(model: IntModel, x: np.ndarray) -> np.ndarray:
    """float32 samples [..., C] -> the model input, exactly as the C kernel does: int8
    (``tl_quantize_input``), or int16 for a model with an int16 input (``tl_quantize_input_s16``)."""
    x = np.asarray(x, dtype=np.float32)
    if x.shape[-1] != model.input_size:
        raise TinyLSTMError(
            f"input has {x.shape[-1]} channels but the model expects {model.input_size}: "
            "pass samples shaped [..., input_size]"
        )
    if not np.all(np.isfinite(x)):
        raise TinyLSTMError("input contains NaN or infinite values: clean or impute the samples first")
    with np.errstate(over="ignore"):  # an overflow to +-inf saturates below, as in the C code
        v = (x - model.input_mean) * model.input_mul  # float32 arithmetic, like the C code
    top = input_qmax(model.input_bits)
    v = np.clip(v, np.float32(-top - 1), np.float32(top))
    return np.trunc(v + np.copysign(np.float32(0.5), v)).astype(model.input_dtype)


# float64 holds every integer below 2^53 exactly
_EXACT = 2.0**53


@dataclass(frozen=True)
class _LayerPlan:
    """One layer's weights laid out for the per-step products, prepared once per run: each part transposed
    ([I, G*H] and [H, G*H]) as ``_prepared`` lays them out, with the power of two each part's sum is aligned
    by."""

    layer: IntLayer
    wx: np.ndarray
    wh: np.ndarray
    x_shift: np.ndarray  # int64 [G*H]: max(a_r, 0)
    h_shift: np.ndarray  # int64 [G*H]: max(-a_r, 0)


# the largest |value| a layer or the head reads: int8 / int16 inputs, int8 / int16 h and the pooled h (the
# contract), with 2^31 to spare, so the float64 path's bound below holds for any input the kernel's types
# can hold
_OPERAND_MAX = 2.0**31


def _prepared(w: np.ndarray) -> np.ndarray:
    """``w`` [rows, cols] as the right operand of ``a @ w.T``: float64 (BLAS; numpy has no integer one) when
    cols x _OPERAND_MAX x max|w| < 2^53, which bounds every partial sum, in whatever order BLAS adds them, to
    integers float64 holds exactly (int8 weights: any width below 2^15); else int64."""
    exact = w.shape[1] * _OPERAND_MAX * float(np.abs(w.astype(np.int64)).max(initial=0)) < _EXACT
    return np.ascontiguousarray(w.T, dtype=np.float64 if exact else np.int64)


def _matmul(a: np.ndarray, w_t: np.ndarray) -> np.ndarray:
    """``a @ w`` exactly as int64, with ``w_t`` from ``_prepared``."""
    return (a.astype(w_t.dtype) @ w_t).astype(np.int64)


def _layer_plan(layer: IntLayer) -> _LayerPlan:
    w, e, cols = layer.weights, layer.scale_exp.astype(np.int64), layer.input_size
    wide: dict[str, Any] = {
        k: np.asarray(v, dtype=np.int64)
        for k in ("bias", "bias_hn", "mult", "shift")
        if (v := getattr(layer, k)) is not None
    }
    return _LayerPlan(
        replace(layer, **wide),  # the step's constants as int64 once, not converted at every step
        _prepared(w[:, :cols]),
        _prepared(w[:, cols:]),
        np.maximum(e, 0),
        np.maximum(-e, 0),
    )


@dataclass(frozen=True)
class _Plan:
    """What every step reads of a model, prepared once per ``run`` (or ``step``) call."""

    cell: CellType
    act: qmath.Activations  # the model's tanh table
    layers: tuple[_LayerPlan, ...]
    backward: tuple[_LayerPlan, ...]
    head_w: np.ndarray  # ``_prepared`` head weights
    pooling: IntUpdate | None

    @classmethod
    def of(cls, model: IntModel) -> _Plan:
        return cls(
            cell_type(model.cell),
            qmath.activations(model.act_table),
            tuple(_layer_plan(layer) for layer in model.layers),
            tuple(_layer_plan(layer) for layer in model.backward),
            _prepared(model.head_w),
            readout(model.readout).int_update,
        )


def _layer_step(
    plan: _Plan, lp: _LayerPlan, x: np.ndarray, h: np.ndarray, c: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One layer's step: the input-side and recurrent-side accumulators of every row, aligned to one scale
    ([B, G*H] each), through the cell's integer step."""
    acc_x = _matmul(x, lp.wx) << lp.x_shift
    acc_h = _matmul(h, lp.wh) << lp.h_shift
    return plan.cell.int_step(lp.layer, plan.act, acc_x, acc_h, h, c)


def _head(model: IntModel, inp: np.ndarray, plan: _Plan | None = None) -> np.ndarray:
    acc = _matmul(inp, (plan or _Plan.of(model)).head_w) + model.head_b
    return qmath.sat(qmath.requantize(acc, model.head_mult, model.head_shift), 16)


def step_traced(
    model: IntModel,
    state: GoldenState,
    xq: np.ndarray,
    plan: _Plan | None = None,
    backward: BackwardSteps | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One sample of every stream: ``xq`` [B, C] (the model input: int8, or int16) -> (outputs int16
    [B, O], the Q0.15 gate activations [B, L, G, H] in the cell's gate order); updates ``state``. A stacked
    model buffers the sample and runs its layers on every k-th (contract/stacking.py); the samples between
    read the held head input and gates. ``plan``: the model prepared by ``run`` (built here when not
    given). ``backward``: where a bidirectional model's backward pass records its steps, when this sample
    runs it."""
    plan = plan or _Plan.of(model)
    inp = np.asarray(xq, dtype=np.int64)
    C = model.input_size
    if model.bidirectional:
        if state.wpos == model.window:  # the next window starts: the kernel resets first
            state.reset(model)
        state.window[:, state.wpos * C : (state.wpos + 1) * C] = inp
        state.wpos += 1
    if model.stack > 1:
        state.stack[:, state.phase * C : (state.phase + 1) * C] = inp
        state.phase += 1
        if state.phase < model.stack:
            return _answer(model, state, plan, backward), state.gates.copy()
        state.phase = 0
        inp = state.stack.copy()
    for n, lp in enumerate(plan.layers):
        h_new, c_new, g = _layer_step(plan, lp, inp, state.h[:, n].copy(), state.c[:, n].copy())
        state.h[:, n] = h_new
        state.c[:, n] = c_new
        state.gates[:, n] = g
        inp = h_new
    if plan.pooling is not None:
        state.pool, inp = plan.pooling(state.pool, inp, min(state.steps + 1, INT32_MAX))
    state.steps += 1
    state.head_in = inp
    return _answer(model, state, plan, backward), state.gates.copy()


def _answer(
    model: IntModel, state: GoldenState, plan: _Plan, backward: BackwardSteps | None = None
) -> np.ndarray:
    """The head of what it reads at this sample: the held readout; for a bidirectional model zeros until the
    window's last sample, where the backward pass runs (on the held forward readout)."""
    if not model.bidirectional:
        return _head(model, state.head_in, plan)
    if state.wpos == model.window:
        state.head2 = np.concatenate([state.head_in, _backward(model, state, plan, backward)], axis=1)
    return _head(model, state.head2, plan)


def _backward(
    model: IntModel, state: GoldenState, plan: _Plan, record: BackwardSteps | None = None
) -> np.ndarray:
    """The backward pass over the window's S = W // k steps, last step first, from the zero state of the
    reset (recording every step's gates and h in ``record``); returns the backward readout [B, H]."""
    width = model.stack * model.input_size
    steps = model.window // model.stack
    v = state.hb[:, -1]
    for t in range(steps):
        inp = state.window[:, (steps - 1 - t) * width : (steps - t) * width]
        for n, lp in enumerate(plan.backward):
            h_new, c_new, g = _layer_step(plan, lp, inp, state.hb[:, n].copy(), state.cb[:, n].copy())
            state.hb[:, n] = h_new
            state.cb[:, n] = c_new
            if record is not None:
                record.gates[:, t, n], record.h[:, t, n] = g, h_new
            inp = h_new
        if plan.pooling is not None:
            state.pool_b, inp = plan.pooling(state.pool_b, inp, t + 1)
        v = inp
    return np.asarray(v, dtype=np.int64)


def step(model: IntModel, state: GoldenState, xq: np.ndarray) -> np.ndarray:
    """One sample of every stream: ``xq`` [B, C] (int8, or int16) -> outputs int16 [B, O]; updates
    ``state``."""
    return step_traced(model, state, xq)[0]


def run(
    model: IntModel, xq: np.ndarray, state: GoldenState | None = None, trace: bool = False
) -> tuple[np.ndarray, GoldenState, dict[str, np.ndarray]]:
    """Run sequences ``xq`` [B, T, C] of the model input (int8, or int16); returns outputs int16
    [B, T, O], the final state, and with ``trace`` the state after every sample (``h``/``c`` [B, T, L, H]; a
    bidirectional model's backward layers' too, ``hb``/``cb``) and the Q0.15 gate activations of every sample
    (``gates`` [B, T, L, G, H], the cell's gate order; a stacked model's are its last step's). A bidirectional
    model's trace also holds its backward pass, which each window's last sample runs, in time order:
    ``backward_gates`` [B, T, L, G, H] and ``backward_h`` [B, T, L, H] hold each backward step's at the
    samples where the forward step reading the same inputs has its own (``BackwardSteps.in_time_order``;
    zeros in a window not completed)."""
    xq = np.asarray(xq)
    if xq.ndim != 3 or xq.shape[2] != model.input_size:
        raise TinyLSTMError(
            f"expected int{model.input_bits} input [batch, steps, {model.input_size}], got {list(xq.shape)}"
        )
    top = input_qmax(model.input_bits)
    if xq.size and (int(xq.min()) < -top - 1 or int(xq.max()) > top):
        raise TinyLSTMError(
            f"input values outside int{model.input_bits}: quantize the samples with golden.quantize_input"
        )
    B, T, _ = xq.shape
    state = state or GoldenState.zeros(model, B)
    ys = np.zeros((B, T, model.output_size), dtype=np.int16)
    h_type = model.hidden_dtype
    L, H = model.num_layers, model.hidden_size
    Lb = len(model.backward)
    shapes = {"h": ((L, H), h_type), "c": ((L, H), np.int16), "gates": ((L, model.gates, H), np.int16)}
    if Lb:
        shapes |= {"hb": ((Lb, H), np.int8), "cb": ((Lb, H), np.int16)}
        shapes |= {"backward_gates": ((Lb, model.gates, H), np.int16), "backward_h": ((Lb, H), np.int8)}
    traces = {key: np.zeros((B, T, *shape), dtype=dt) for key, (shape, dt) in shapes.items()} if trace else {}
    plan = _Plan.of(model)
    if model.stack == 1 and not Lb:
        _run_layers_first(model, plan, xq, state, ys, traces)
        return ys, state, traces
    backward = BackwardSteps.zeros(model, B) if traces and Lb else None
    for t in range(T):
        ys[:, t], g = step_traced(model, state, xq[:, t], plan, backward)
        if traces:
            traces["h"][:, t], traces["c"][:, t], traces["gates"][:, t] = state.h, state.c, g
            if Lb:
                traces["hb"][:, t], traces["cb"][:, t] = state.hb, state.cb
        if backward is not None and state.wpos == model.window:
            _trace_backward(model, backward, traces, t)
    return ys, state, traces


# batch x samples per layer-first span: bounds its int64 [rows, G*H] products (64 MB: an LSTM of 32 units)
_SPAN_ROWS = 1 << 16


def _run_layers_first(
    model: IntModel,
    plan: _Plan,
    xq: np.ndarray,
    state: GoldenState,
    ys: np.ndarray,
    traces: dict[str, np.ndarray],
) -> None:
    """``run`` of a model whose layers step once per sample and read nothing ahead (no stacking, no backward
    layers): a span of samples through the first layer, then through the next, and so on, which computes
    every word as ``step_traced`` does, since a layer's step reads only its own state and the layer below's h
    at that sample. The input-side products of a span are one matrix product (exact in any order of
    summation: ``_prepared``) and so is the head's; only the recurrent part steps sample by sample. Writes
    the outputs into ``ys`` and the traces (when given); updates ``state``."""
    B, T, _ = xq.shape
    step = plan.cell.int_step
    span = max(1, _SPAN_ROWS // max(B, 1))
    for t0 in range(0, T, span):
        inp = np.asarray(xq[:, t0 : t0 + span], dtype=np.int64)
        S = inp.shape[1]
        for n, lp in enumerate(plan.layers):
            acc_x = (_matmul(inp.reshape(B * S, -1), lp.wx) << lp.x_shift).reshape(B, S, -1)
            h, c, g = state.h[:, n].copy(), state.c[:, n].copy(), state.gates[:, n]
            out = np.empty((B, S, model.hidden_size), dtype=np.int64)
            for t in range(S):
                h, c, g = step(lp.layer, plan.act, acc_x[:, t], _matmul(h, lp.wh) << lp.h_shift, h, c)
                out[:, t] = h
                if traces:
                    at = (slice(None), t0 + t, n)
                    traces["h"][at], traces["c"][at], traces["gates"][at] = h, c, g
            state.h[:, n], state.c[:, n], state.gates[:, n] = h, c, g
            inp = out
        if plan.pooling is not None:
            for t in range(S):
                state.pool, inp[:, t] = plan.pooling(
                    state.pool, inp[:, t], min(state.steps + t + 1, INT32_MAX)
                )
        ys[:, t0 : t0 + S] = _head(model, inp.reshape(B * S, -1), plan).reshape(B, S, -1)
        state.steps += S
        state.head_in = inp[:, -1].copy()


def _trace_backward(model: IntModel, backward: BackwardSteps, traces: dict[str, np.ndarray], t: int) -> None:
    """Place the backward pass sample ``t`` ran in the trace, over the window's samples (those of it that
    are in this run: it may have started before)."""
    first = t + 1 - model.window
    for key, values in zip(("backward_gates", "backward_h"), backward.in_time_order(model), strict=True):
        traces[key][:, max(first, 0) : t + 1] = values[:, max(-first, 0) :]


def state_trace(traces: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The h and c words of every layer after every sample, from ``run``'s traces: [B, T, L, H] each, a
    bidirectional model's backward layers after the forward ones ([B, T, 2L, H]), as ``CModel.trace`` gives
    them."""
    if "hb" not in traces:
        return traces["h"], traces["c"]
    h = np.concatenate([traces["h"], traces["hb"].astype(traces["h"].dtype)], axis=2)
    return h, np.concatenate([traces["c"], traces["cb"]], axis=2)


def dequantize_output(model: IntModel, y: np.ndarray) -> np.ndarray:
    """int16 outputs -> real values (logits, or regression targets in the dataset's units)."""
    real = np.asarray(y, dtype=np.float64) * model.output_scale
    meta = model.meta
    if meta.task == "regression" and meta.target_mean is not None and meta.target_std is not None:
        real = real * np.asarray(meta.target_std) + np.asarray(meta.target_mean)
    return real
