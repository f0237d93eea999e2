"""Emit the integer model as C: a header of dims/macros and a source file of const data.

The same two files go into the host bridge (cffi) and every firmware build.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from tinylstm.codegen.quantize import IntLayer, IntModel
from tinylstm.contract import qmath
from tinylstm.contract.cells import cell_type
from tinylstm.contract.constants import HIDDEN16_BITS, HIDDEN_BITS, KERNEL_VERSION, TABLE_HI, TABLE_LO
from tinylstm.contract.readouts import readout
from tinylstm.errors import TinyLSTMError

Layout = Literal["w8", "w16"]
LAYOUTS: tuple[str, ...] = ("w8", "w16")
# what the kernel and the model file are compiled with for each layout
LAYOUT_DEFINES: dict[str, tuple[str, ...]] = {"w8": (), "w16": ("-DTL_LAYOUT_W16",)}
# what the kernel and the model file are compiled with for each hidden state (int16 h: the int16-h steps)
HIDDEN_DEFINES: dict[int, tuple[str, ...]] = {HIDDEN_BITS: (), HIDDEN16_BITS: ("-DTL_HIDDEN16",)}


def check_format(layout: str, hidden_bits: int) -> None:
    """Refuse a weight layout and hidden state that do not go together, before any work is done."""
    if hidden_bits not in HIDDEN_DEFINES:
        raise TinyLSTMError(
            f"a hidden state of {hidden_bits} bits: choose --hidden-bits 8 (int8 Q0.7) or 16 (int16 Q0.15)"
        )
    if layout == "w16" and hidden_bits != HIDDEN_BITS:
        raise TinyLSTMError(
            f"the w16 weight layout is for int8 hidden states, not int{hidden_bits}: export with --layout w8 "
            "(the int16-h kernel reads int8 weights) or with --hidden-bits 8"
        )


# what an int8-h model with an int16 input adds: its layer 0's int16 step (-DTL_HIDDEN16 implies it)
INPUT16_DEFINES: tuple[str, ...] = ("-DTL_INPUT16",)


def build_defines(m: IntModel, layout: Layout = "w8") -> tuple[str, ...]:
    """The -D flags every build of ``m``'s emitted files (kernel and model) needs."""
    return LAYOUT_DEFINES[layout] + HIDDEN_DEFINES[m.hidden_bits] + (INPUT16_DEFINES if m.input16 else ())


def layer_layout(m: IntModel, n: int, layout: Layout) -> Layout:
    """The weight layout of layer ``n`` (of ``m.layers + m.backward``): ``layout``, except an int16 input's
    layer 0, whose int16 step reads int8 rows (w8)."""
    return "w8" if m.input16 and n == 0 else layout


def model_settings(m: IntModel) -> dict[str, str]:
    """What a firmware of this one model leaves out of the kernel (csrc/tl_kernels.h): the other cells, the
    int8-h steps of an int16-h model, the int8 layer steps of a one-layer int16-input model, pooling for the
    last-h readout, stacking for one sample per step, the backward pass of a unidirectional model. The kernel
    then refuses other models, so these are for builds of one model only (firmware, its packages)."""
    out = {"TL_ONLY_CELL": f"TL_CELL_{m.cell.upper()}"}
    if m.hidden_bits == HIDDEN16_BITS:
        out["TL_ONLY_HIDDEN16"] = "1"
    if m.input16 and m.num_layers == 1:  # its one layer is layer 0's int16 step
        out["TL_ONLY_INPUT16_LAYER0"] = "1"
    if not readout(m.readout).pooled:
        out["TL_NO_POOL"] = "1"
    if m.stack == 1:
        out["TL_NO_STACK"] = "1"
    if not m.bidirectional:
        out["TL_NO_BIDIR"] = "1"
    return out


def build_settings(m: IntModel, layout: Layout = "w8") -> dict[str, str]:
    """``build_defines`` as settings (name -> value) plus ``model_settings``: a firmware build of ``m`` (its
    -D flags, or tl_config.h), which links only what ``m`` runs."""
    return {**{flag.removeprefix("-D"): "1" for flag in build_defines(m, layout)}, **model_settings(m)}


@dataclass
class EmittedC:
    header: Path
    source: Path


def _stored_table(m: IntModel) -> np.ndarray:
    """The tanh table entries the kernel stores (contract/qmath.py, stored_table)."""
    try:
        return qmath.stored_table(m.act_table)
    except ValueError as e:
        raise TinyLSTMError(
            f"{e}: this model was not made by this tinylstm's quantizer; export it again"
        ) from None


def _c_array(
    ctype: str, name: str, values: np.ndarray, per_line: int, row_notes: list[str] | None = None
) -> str:
    """A const C array; with ``row_notes`` one matrix row per line, each with its note."""
    values = np.asarray(values)
    if row_notes:
        rows = values.reshape(len(row_notes), -1)
        lines = [
            "    " + ", ".join(map(str, row.tolist())) + f",  /* {note} */"
            for row, note in zip(rows, row_notes, strict=True)
        ]
    else:
        vals = [str(v) for v in values.ravel().tolist()]
        lines = ["    " + ", ".join(vals[k : k + per_line]) + "," for k in range(0, len(vals), per_line)]
    return f"static const {ctype} {name}[{values.size}] = {{\n" + "\n".join(lines) + "\n};\n"


def _c_floats(name: str, values: np.ndarray) -> str:
    # repr of the exact float32 value as a double always has a '.' or an exponent and round-trips
    body = ", ".join(repr(float(v)) + "f" for v in np.asarray(values, dtype=np.float32))
    return f"static const float {name}[{np.asarray(values).size}] = {{ {body} }};\n"


def _c_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


# what a model's input type is stepped and converted with
_INPUT_API = {8: "tl_step, tl_quantize_input", 16: "tl_step_s16, tl_quantize_input_s16"}
# the stems of tl_<stem>.c/.h files of the kernel (csrc/), the firmware (firmware/) and a build's generated
# files: a model named like one would shadow that file in a build (tests/test_bad_input.py checks the list)
RESERVED_NAMES = {
    *("api", "bidir", "blob", "cells", "contract", "crc32", "dense", "dot", "dot_s16", "dsp", "gru"),
    *("input", "kernels", "kernel_unity", "lstm", "pool", "qmath", "rnn", "sources"),
    *("app", "config", "hal", "hal_espidf", "hal_riscv_virt", "hal_stm32f4", "proto", "replay", "rx_ring"),
    "sensor",
}


def check_name(name: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", name) or name in RESERVED_NAMES:
        raise TinyLSTMError(
            f"model name {name!r} must be a lowercase C identifier (a letter, then letters, digits, '_'; at "
            f"most 32 characters) and not one of {sorted(RESERVED_NAMES)}"
        )
    return name


def w16_weights(L: IntLayer, gates: int) -> np.ndarray:
    """The fast "w16" layout of one layer's gate weights (tl_layer_t.weights16 in csrc/tinylstm.h).

    The same int8 weights times their part's factor from the row's scale exponent e (x part 2^max(e,0),
    h part 2^max(-e,0)), so the kernel's plain sum is acc_x * 2^max(e,0) + acc_h * 2^max(-e,0). One block per
    unit j: the x part then the h part, each = groups of 4 columns (per gate: columns 4q, 4q+2, 4q+1,
    4q+3, the lanes SXTB16 unpacks), then the n % 4 tail columns per gate, then one 0 if the part has
    an odd number of values (GRU), so every part starts 4-byte aligned.
    """
    G, H, I = gates, L.hidden_size, L.input_size
    w = L.weights.astype(np.int32).reshape(G, H, I + H)
    e = L.scale_exp.astype(np.int32).reshape(G, H, 1)
    parts = []
    for part, n in ((w[:, :, :I] << np.maximum(e, 0), I), (w[:, :, I:] << np.maximum(-e, 0), H)):
        q = n - n % 4
        body = part[:, :, :q].reshape(G, H, q // 4, 4)[:, :, :, [0, 2, 1, 3]].transpose(1, 2, 0, 3)
        tail = part[:, :, q:].transpose(1, 0, 2)
        parts += [body.reshape(H, -1), tail.reshape(H, -1), np.zeros((H, (G * n) % 2), np.int32)]
    out = np.concatenate(parts, axis=1).ravel()
    assert np.abs(out).max(initial=0) <= 128 * 16  # int8 times at most 2^4
    return out.astype(np.int16)


def render_header(m: IntModel, name: str) -> str:
    P = f"TL_{name.upper()}"
    meta = m.meta
    classes = meta.classes or []
    lines = [
        f"/* Generated by tinylstm codegen: do not edit. Model {name}, hash 0x{m.model_hash:08x}. */",
        f"#ifndef {P}_H",
        f"#define {P}_H",
        "",
        '#include "tinylstm.h"',
        "",
        f"#if TL_KERNEL_VERSION != {KERNEL_VERSION}",
        f'#error "model {name} was generated for kernel version {KERNEL_VERSION}"',
        "#endif",
        "",
        f"#define {P}_HASH 0x{m.model_hash:08x}u",
        f"#define {P}_CELL TL_CELL_{m.cell.upper()}",
        f"#define {P}_NUM_LAYERS {m.num_layers}",
        f"#define {P}_INPUT_SIZE {m.input_size}",
        f"#define {P}_HIDDEN_SIZE {m.hidden_size}",
        f"#define {P}_OUTPUT_SIZE {m.output_size}",
        f"/* the hidden state: int{m.hidden_bits} Q0.{m.layers[0].hidden_frac} */",
        f"#define {P}_HIDDEN_BITS {m.hidden_bits}",
        f"/* the model input: int{m.input_bits} ({_INPUT_API[m.input_bits]}) */",
        f"#define {P}_INPUT_BITS {m.input_bits}",
        f"/* what the head reads: {readout(m.readout).doc} */",
        f"#define {P}_READOUT TL_READOUT_{m.readout.upper()}",
        f"/* samples per recurrent step (input stacking, 1: none): the layers run every {P}_STACK samples */",
        f"#define {P}_STACK {m.stack}",
        f"#define {P}_STATE_WORDS (TL_STATE_WORDS{'_H16' if m.hidden_bits == HIDDEN16_BITS else ''}"
        f"({P}_NUM_LAYERS, {P}_HIDDEN_SIZE)"
        + (f" + TL_POOL_WORDS({P}_HIDDEN_SIZE)" if readout(m.readout).pooled else "")
        + (f" + TL_STACK_WORDS({P}_STACK * {P}_INPUT_SIZE * {m.input_bits // 8})" if m.stack > 1 else "")
        + (
            f" + TL_BIDIR_WORDS({P}_NUM_LAYERS, {P}_HIDDEN_SIZE, {P}_WINDOW, {P}_INPUT_SIZE)"
            + (f" + TL_POOL_WORDS({P}_HIDDEN_SIZE)" if readout(m.readout).pooled else "")
            if m.bidirectional
            else ""
        )
        + ")",
        "/* bidirectional (a backward pass over the window at its last sample; docs/integer-contract.md) */",
        f"#define {P}_BIDIRECTIONAL {int(m.bidirectional)}",
        f"#define {P}_IS_CLASSIFIER {1 if meta.task == 'classification' else 0}",
        f"/* window mode: reset the state every {P}_WINDOW steps and read the output at the last one;",
        f"   stream mode ({P}_WINDOW == 0): never reset, every output counts. */",
        f"#define {P}_WINDOW {meta.window if meta.mode == 'window' and meta.window else 0}",
        f"/* real value of one output LSB: {m.output_scale!r} */",
        f"#define {P}_OUTPUT_SCALE {m.output_scale:.9g}f",
        f"#define {P}_NUM_CLASSES {len(classes)}",
        "",
        f"extern const tl_model_t tl_{name};",
    ]
    if classes:
        lines.append(f"extern const char *const tl_{name}_classes[{P}_NUM_CLASSES];")
    lines += ["", f"#endif /* {P}_H */", ""]
    return "\n".join(lines)


def render_source(m: IntModel, name: str, layout: Layout = "w8") -> str:
    if layout not in LAYOUTS:
        raise TinyLSTMError(f"weight layout {layout!r} must be one of {list(LAYOUTS)}")
    check_format(layout, m.hidden_bits)
    H, G = m.hidden_size, m.gates
    gates = cell_type(m.cell).gate_names
    out = [
        f"/* Generated by tinylstm codegen: do not edit. Model {name}, hash 0x{m.model_hash:08x}.",
        f" * {'bidirectional ' if m.bidirectional else ''}{m.cell.upper()}, {m.num_layers} layer(s), input "
        f"{m.input_size}"
        + (f" x {m.stack} samples per step" if m.stack > 1 else "")
        + f", hidden {H}, output {m.output_size}.",
        " * Integer contract: docs/integer-contract.md. */",
        f'#include "tl_{name}.h"',
        "",
    ]
    if layout == "w16":
        out += [
            "#ifndef TL_LAYOUT_W16",
            f'#error "model {name} uses the w16 weight layout: build the kernel and this file with '
            '-DTL_LAYOUT_W16"',
            "#endif",
            "",
        ]
    if m.input16:
        out += [
            "#ifndef TL_INPUT16",
            f'#error "model {name} has an int16 input: build the kernel and this file with -DTL_INPUT16"',
            "#endif",
            "",
        ]
    if m.hidden_bits == HIDDEN16_BITS:
        out += [
            "#ifndef TL_HIDDEN16",
            f'#error "model {name} has an int16 hidden state: build the kernel and this file with '
            '-DTL_HIDDEN16"',
            "#endif",
            "",
        ]
    inits: dict[str, list[str]] = {"l": [], "b": []}
    for k, L in enumerate(m.layers + m.backward):
        prefix, n = ("l", k) if k < m.num_layers else ("b", k - m.num_layers)
        layer_inits = inits[prefix]
        notes = [f"{gates[r // H]}[{r % H}]" for r in range(G * H)]
        out.append(
            f"/* {'' if prefix == 'l' else 'backward '}layer {n}: rows are gates {','.join(gates)} x {H} "
            f"units; columns [x({L.input_size}) ; h({H})] */"
        )
        wide = layer_layout(m, k, layout) == "w16"
        if not wide:
            out.append(_c_array("int8_t", f"{prefix}{n}_weights", L.weights, 16, notes))
        else:
            w16 = w16_weights(L, G)
            out.append(
                f"/* w16 layout (tinylstm.h, tl_layer_t.weights16): {w16.size} values in {H} unit blocks */"
            )
            out.append(
                _c_array("int16_t", f"{prefix}{n}_weights16", w16, 16).replace(
                    f"{prefix}{n}_weights16[{w16.size}]", f"{prefix}{n}_weights16[{w16.size}] TL_ALIGN4", 1
                )
            )
        out.append(_c_array("int32_t", f"{prefix}{n}_bias", L.bias, 8))
        out.append(_c_array("int32_t", f"{prefix}{n}_mult", L.mult, 8))
        out.append(_c_array("int8_t", f"{prefix}{n}_shift", L.shift, 16))
        out.append(_c_array("int8_t", f"{prefix}{n}_scale_exp", L.scale_exp, 16))
        if L.bias_hn is not None:
            out.append(_c_array("int32_t", f"{prefix}{n}_bias_hn", L.bias_hn, 8))
        # Designated initializers: fields a newer tinylstm.h adds stay NULL/0 in older generated files.
        fields = [
            f".input_size = {L.input_size}",
            f".hidden_size = {H}",
            f".weights16 = {prefix}{n}_weights16" if wide else f".weights = {prefix}{n}_weights",
            f".bias = {prefix}{n}_bias",
            f".mult = {prefix}{n}_mult",
            f".shift = {prefix}{n}_shift",
            f".scale_exp = {prefix}{n}_scale_exp",
            f".cell_frac = {L.cell_frac}",
        ]
        if L.bias_hn is not None:
            fields.append(f".bias_hn = {prefix}{n}_bias_hn")
        layer_inits.append("    { " + ", ".join(fields) + " },")
    out.append("static const tl_layer_t layers[] = {\n" + "\n".join(inits["l"]) + "\n};\n")
    if m.backward:
        out.append("static const tl_layer_t backward_layers[] = {\n" + "\n".join(inits["b"]) + "\n};\n")
    out.append(
        _c_array("int8_t", "head_weights", m.head_w, 16, [f"output {o}" for o in range(m.output_size)])
    )
    out.append(_c_array("int32_t", "head_bias", m.head_b, 8))
    out.append(_c_array("int32_t", "head_mult", m.head_mult, 8))
    out.append(_c_array("int8_t", "head_shift", m.head_shift, 16))
    out.append(
        f"/* tanh at x = -8 + k/16 (k = TL_TABLE_LO..TL_TABLE_HI + 1: {TABLE_LO}..{TABLE_HI + 1}; saturated "
        "beyond), Q0.15; sigmoid is derived from it */"
    )
    out.append(_c_array("int16_t", "act_table", _stored_table(m), 16))
    out.append("/* normalisation folded into input quantization: q = round((x - mean) * mul) */")
    out.append(_c_floats("input_mean", m.input_mean))
    out.append(_c_floats("input_mul", m.input_mul))
    out.append(
        f"const tl_model_t tl_{name} = {{\n"
        f"    .hash = 0x{m.model_hash:08x}u, .cell = TL_CELL_{m.cell.upper()}, .num_layers = "
        f"{m.num_layers}, .hidden_bits = {m.hidden_bits}, .readout = TL_READOUT_{m.readout.upper()},"
        + (f" .stack = {m.stack}," if m.stack > 1 else "")
        + (f" .input_bits = {m.input_bits}," if m.input16 else "")
        + "\n"
        f"    .input_size = {m.input_size}, .hidden_size = {H}, .output_size = {m.output_size}, .layers = "
        "layers,\n"
        "    .head_weights = head_weights, .head_bias = head_bias, .head_mult = head_mult, .head_shift = "
        "head_shift,\n"
        "    .act_table = act_table, .input_mean = input_mean, .input_mul = input_mul,\n"
        + (f"    .backward = backward_layers, .window = {m.window},\n" if m.backward else "")
        + "};\n"
    )
    if m.meta.classes:
        names = ", ".join(_c_string(c) for c in m.meta.classes)
        out.append(f"const char *const tl_{name}_classes[{len(m.meta.classes)}] = {{ {names} }};\n")
    return "\n".join(out)


# sizeof(tl_layer_t) and sizeof(tl_model_t) on a 32-bit target (csrc/tinylstm.h): pointers and ints
LAYER_STRUCT_BYTES, MODEL_STRUCT_BYTES = 36, 56


def model_data_bytes(m: IntModel, layout: Layout = "w8") -> int:
    """Bytes of constant data render_source emits for ``m`` on a 32-bit target: every array above, the
    layer and model structs and the class names (alignment padding aside, a few bytes)."""
    total = MODEL_STRUCT_BYTES
    for n, L in enumerate(m.layers + m.backward):
        weights = L.weights.size * (1 if layer_layout(m, n, layout) == "w8" else 2)
        total += weights + 4 * (L.bias.size + L.mult.size) + L.shift.size + L.scale_exp.size
        total += 0 if L.bias_hn is None else 4 * L.bias_hn.size
        total += LAYER_STRUCT_BYTES
    total += m.head_w.size + 4 * (m.head_b.size + m.head_mult.size) + m.head_shift.size
    total += 2 * _stored_table(m).size + 4 * (m.input_mean.size + m.input_mul.size)
    total += sum(len(c) + 1 + 4 for c in m.meta.classes or [])
    return total


def verify_emitted(m: IntModel, gen_dir: Path, name: str = "model", layout: Layout = "w8") -> None:
    """Refuse ``tl_<name>.h/.c`` in ``gen_dir`` unless they are exactly what ``m`` renders to: a firmware or a
    host build from edited generated C would otherwise run under the export's model hash."""
    for path, want in (
        (gen_dir / f"tl_{name}.h", render_header(m, name)),
        (gen_dir / f"tl_{name}.c", render_source(m, name, layout)),
    ):
        if path.is_file() and path.read_text() != want:
            raise TinyLSTMError(
                f"{path} is not the C that the export's model 0x{m.model_hash:08x} renders to (edited, or "
                "copied from another export): run `tinylstm export` again instead of editing generated files"
            )


def emit_c(m: IntModel, out_dir: Path, name: str = "model", layout: Layout = "w8") -> EmittedC:
    """Write ``tl_<name>.h`` and ``tl_<name>.c`` into ``out_dir``.

    ``layout`` "w8" (default): int8 row-major gate weights, the smallest flash. "w16": the gate weights
    widened to int16 in the fast layout of tl_layer_t.weights16 (2x the weight flash, fewer instructions
    on Cortex-M4/M7 with DSP; same bits, same model hash; compile the kernel and the model with
    -DTL_LAYOUT_W16). The head stays int8 in both.
    """
    check_name(name)
    out_dir.mkdir(parents=True, exist_ok=True)
    header, source = out_dir / f"tl_{name}.h", out_dir / f"tl_{name}.c"
    text = render_source(m, name, layout)
    header.write_text(render_header(m, name))
    source.write_text(text)
    return EmittedC(header, source)
