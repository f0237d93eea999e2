"""The ``.tlm`` model blob: one integer model as a versioned, CRC-checked, zero-copy byte image.

Byte layout: docs/model-blob.md. The C reader is csrc/tl_blob.c (``tl_blob_parse``); the
MicroPython reader is firmware/micropython/tinylstm_mpy.py. Every array starts on a 4-byte
boundary, so C (and MicroPython's viper) point into the blob instead of copying it.
"""

from __future__ import annotations

import dataclasses
import json
import struct
import zlib
from typing import Any

import numpy as np

from tinylstm.codegen.quantize import Calibration, IntLayer, IntModel
from tinylstm.codegen.spec import ModelMeta
from tinylstm.contract import qmath
from tinylstm.contract.cells import by_code, cell_type
from tinylstm.contract.constants import (
    BIAS_LIMIT,
    BLOB_FORMAT_VERSION,
    BLOB_HEADER_SIZE,
    BLOB_INPUT16_FLAG,
    BLOB_MAGIC,
    HIDDEN16_BITS,
    HIDDEN_BITS,
    HIDDEN_FORMATS,
    KERNEL_VERSION,
    MAX_HIDDEN,
    MAX_INPUT,
    MAX_INPUT16,
    MAX_LAYERS,
    MAX_WINDOW,
    MULT16_BITS,
    TABLE_SIZE,
)
from tinylstm.contract.readouts import by_code as readout_by_code
from tinylstm.contract.readouts import readout
from tinylstm.errors import TinyLSTMError

# magic, format version, kernel version, crc32, total size, model hash, cell, layers,
# section count, input, hidden, output, hidden bits (8 or 16; 0 = 8 in blobs written before the field),
# readout (contract/readouts.py; 0 = last, also in blobs written before the field, where it was the high
# byte of a u16 hidden-bits field), cell_frac[3], stack (samples per step, contract/stacking.py; 0 = 1, also
# in blobs written before the field, where it was an unused fourth cell_frac), section table offset
HEADER = struct.Struct("<4sHHIIIBBHHHHBB3bBI")
assert HEADER.size == BLOB_HEADER_SIZE
CRC_START = 12  # the CRC covers bytes [CRC_START, total_size)
GLOBAL_SECTIONS = (
    "act_table",
    "input_mean",
    "input_mul",
    "head_w",
    "head_b",
    "head_mult",
    "head_shift",
    "meta",
)
LAYER_SECTIONS = ("weights", "bias", "bias_hn", "mult", "shift", "scale_exp")
# A bidirectional window model's blob has 9 + 12L sections, a unidirectional one's 8 + 6L: the globals, the
# forward layers, then the backward layers (the same six sections each) and this last one: u16 window W,
# i8 cell_frac of backward layers 0..L-1 (unused entries 0), three reserved zero bytes. Readers that know only
# the unidirectional form refuse it by its section count.
BIDIR = struct.Struct("<H3b3s")
_ENTRY = struct.Struct("<II")
_FIX = "regenerate the blob from the model with tinylstm.codegen.blob.to_blob"


def _align(n: int) -> int:
    return (n + 3) & ~3


def _meta_json(m: IntModel) -> bytes:
    doc = {
        "meta": dataclasses.asdict(m.meta),
        "calibration": dataclasses.asdict(m.calibration),
        "output_scale": float(m.output_scale),
        "input_scale": float(m.input_scale),
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _arrays(m: IntModel) -> list[bytes]:
    """Section payloads in table order: the globals, six per layer (the forward ones, then a bidirectional
    model's backward ones) and a bidirectional model's window section."""
    out = [
        m.act_table.astype("<i2").tobytes(),
        m.input_mean.astype("<f4").tobytes(),
        m.input_mul.astype("<f4").tobytes(),
        m.head_w.astype("<i1").tobytes(),
        m.head_b.astype("<i4").tobytes(),
        m.head_mult.astype("<i4").tobytes(),
        m.head_shift.astype("<i1").tobytes(),
        _meta_json(m),
    ]
    for L in m.layers + m.backward:
        out += [
            L.weights.astype("<i1").tobytes(),
            L.bias.astype("<i4").tobytes(),
            b"" if L.bias_hn is None else L.bias_hn.astype("<i4").tobytes(),
            L.mult.astype("<i4").tobytes(),
            L.shift.astype("<i1").tobytes(),
            L.scale_exp.astype("<i1").tobytes(),
        ]
    if m.bidirectional:
        fracs = [L.cell_frac for L in m.backward] + [0] * (MAX_LAYERS - m.num_layers)
        out.append(BIDIR.pack(m.window, *fracs, bytes(3)))
    return out


def to_blob(m: IntModel) -> bytes:
    """Serialise ``m`` to the ``.tlm`` format (little-endian, 4-byte aligned, CRC-32 checked)."""
    if m.num_layers > MAX_LAYERS:
        raise TinyLSTMError(
            f"{m.num_layers} layers do not fit a blob (at most {MAX_LAYERS}): re-export the model"
        )
    if m.bidirectional and (len(m.backward) != m.num_layers or not m.stack <= m.window <= MAX_WINDOW):
        raise TinyLSTMError(
            f"a bidirectional model of {m.num_layers} layers with {len(m.backward)} backward layers and a "
            f"window of {m.window} samples does not fit a blob (one backward layer per layer, a window of "
            f"{m.stack}-{MAX_WINDOW} samples): re-export the model"
        )
    sections = _arrays(m)
    table_off = HEADER.size
    pos = _align(table_off + _ENTRY.size * len(sections))
    entries, body = [], bytearray()
    for data in sections:
        entries.append(_ENTRY.pack(pos, len(data)))
        body += data + bytes(_align(len(data)) - len(data))
        pos += _align(len(data))
    fracs = [L.cell_frac for L in m.layers] + [0] * (MAX_LAYERS - m.num_layers)
    table = b"".join(entries)
    table += bytes(_align(table_off + len(table)) - table_off - len(table))
    head = HEADER.pack(
        BLOB_MAGIC,
        BLOB_FORMAT_VERSION,
        KERNEL_VERSION,
        0,
        pos,
        m.model_hash,
        cell_type(m.cell).code,
        m.num_layers,
        len(sections),
        m.input_size,
        m.hidden_size,
        m.output_size,
        m.hidden_bits | (BLOB_INPUT16_FLAG if m.input16 else 0),
        readout(m.readout).code,
        *fracs,
        m.stack if m.stack > 1 else 0,
        table_off,
    )
    blob = bytearray(head + table + body)
    struct.pack_into("<I", blob, 8, zlib.crc32(blob[CRC_START:]) & 0xFFFFFFFF)
    return bytes(blob)


def _err(problem: str) -> TinyLSTMError:
    return TinyLSTMError(f"bad model blob: {problem}; {_FIX}")


def _expected_sizes(
    cell: str, layers: int, inp: int, hid: int, out: int, stack: int, bidir: bool = False
) -> list[int | None]:
    """Byte size of every section (None: any size, the metadata JSON); layer 0 reads ``stack`` samples. A
    bidirectional model's head reads 2H values, and its backward layers and window section follow."""
    c = cell_type(cell)
    G = c.gates
    head = out * hid * (2 if bidir else 1)
    sizes: list[int | None] = [2 * TABLE_SIZE, 4 * inp, 4 * inp, head, 4 * out, 4 * out, out, None]
    for k in range(layers * (2 if bidir else 1)):
        n = k % layers
        width = inp * stack if n == 0 else hid
        sizes += [
            G * hid * (width + hid),
            4 * G * hid,
            4 * hid if c.bias_hn else 0,
            4 * G * hid,
            G * hid,
            G * hid,
        ]
    return sizes + ([BIDIR.size] if bidir else [])


def read_header(data: bytes) -> dict[str, Any]:
    """Check the header, size and CRC of a blob; return its header fields."""
    if len(data) < HEADER.size:
        raise _err(f"{len(data)} bytes is shorter than the {HEADER.size}-byte header (truncated file?)")
    (magic, fmt, kver, crc, total, mhash, cell, layers, nsec, inp, hid, out, hidden_bits, ro, *rest) = (
        HEADER.unpack_from(data)
    )
    input16 = bool(hidden_bits & BLOB_INPUT16_FLAG)  # an int8-h model with an int16 input
    hidden_bits = (hidden_bits & ~BLOB_INPUT16_FLAG) or HIDDEN_BITS
    fracs, stack, table_off = rest[:MAX_LAYERS], rest[MAX_LAYERS] or 1, rest[MAX_LAYERS + 1]
    if magic != BLOB_MAGIC:
        raise _err(f"magic is {magic!r}, expected {BLOB_MAGIC!r} (not a .tlm file)")
    if fmt != BLOB_FORMAT_VERSION:
        raise _err(f"format version {fmt}, this TinyLSTM reads version {BLOB_FORMAT_VERSION}")
    if kver != KERNEL_VERSION:
        raise _err(f"kernel version {kver}, this TinyLSTM runs kernel version {KERNEL_VERSION}")
    if total < HEADER.size or total > len(data):
        raise _err(f"header says {total} bytes but {len(data)} are present (truncated file?)")
    actual = zlib.crc32(data[CRC_START:total]) & 0xFFFFFFFF
    if actual != crc:
        raise _err(f"CRC-32 is {actual:08x}, the header says {crc:08x} (corrupted file)")
    cell_t = by_code(cell)
    if cell_t is None:
        raise _err(f"unknown cell type {cell}")
    if not (1 <= layers <= MAX_LAYERS and 1 <= hid <= MAX_HIDDEN and 1 <= inp <= MAX_INPUT and out >= 1):
        raise _err(f"unsupported shape: {layers} layers, input {inp}, hidden {hid}, output {out}")
    if hidden_bits not in HIDDEN_FORMATS:
        raise _err(
            f"hidden state of {hidden_bits} bits; this TinyLSTM runs {' or '.join(map(str, HIDDEN_FORMATS))}"
        )
    readout_t = readout_by_code(ro)
    if readout_t is None:
        raise _err(f"unknown readout {ro}")
    if inp * stack > MAX_INPUT:
        raise _err(f"stacking {stack} samples of {inp} channels exceeds the kernel's {MAX_INPUT} step inputs")
    if input16 and hidden_bits != HIDDEN_BITS:
        raise _err(f"the int16-input flag on a {hidden_bits}-bit hidden state (it is for an int8 one)")
    if (input16 or hidden_bits == HIDDEN16_BITS) and inp * stack > MAX_INPUT16:
        raise _err(
            f"a model reading {inp * stack} int16 inputs per step; the kernel takes at most {MAX_INPUT16}"
        )
    uni = len(GLOBAL_SECTIONS) + len(LAYER_SECTIONS) * layers
    bidir = nsec == uni + len(LAYER_SECTIONS) * layers + 1
    if (nsec != uni and not bidir) or table_off != HEADER.size:
        raise _err(
            f"section table ({nsec} entries at offset {table_off}) does not match {layers} layers ({uni}, or "
            f"{2 * uni - len(GLOBAL_SECTIONS) + 1} for a bidirectional model, at offset {HEADER.size})"
        )
    if bidir and (hidden_bits != HIDDEN_BITS or input16):
        raise _err("a bidirectional model with an int16 hidden state or input (it keeps int8 ones)")
    return {
        "cell": cell_t.name,
        "layers": layers,
        "input": inp,
        "hidden": hid,
        "output": out,
        "hash": mhash,
        "cell_frac": list(fracs[:layers]),
        "hidden_bits": hidden_bits,
        "input16": input16,
        "readout": readout_t.name,
        "stack": stack,
        "total": total,
        "sections": nsec,
        "bidirectional": bidir,
    }


def _sections(data: bytes, h: dict[str, Any]) -> list[bytes]:
    table_end = HEADER.size + _ENTRY.size * h["sections"]
    if table_end > h["total"]:
        raise _err(f"the header says {h['total']} bytes, too few for its section table (truncated file?)")
    nl, bidir = h["layers"], h["bidirectional"]
    sizes = _expected_sizes(h["cell"], nl, h["input"], h["hidden"], h["output"], h["stack"], bidir)
    names = list(GLOBAL_SECTIONS) + [f"layer {n} {s}" for n in range(nl) for s in LAYER_SECTIONS]
    if bidir:
        names += [f"backward layer {n} {s}" for n in range(nl) for s in LAYER_SECTIONS] + ["window"]
    out = []
    for k, (name, want) in enumerate(zip(names, sizes, strict=True)):
        off, size = _ENTRY.unpack_from(data, HEADER.size + _ENTRY.size * k)
        if want is not None and size != want:
            raise _err(f"section {name} has {size} bytes, expected {want}")
        if off % 4 or off < table_end or off + size > h["total"]:
            raise _err(f"section {name} at offset {off} (+{size}) is misaligned or outside the blob")
        out.append(data[off : off + size])
    return out


def from_blob(data: bytes) -> IntModel:
    """Parse a ``.tlm`` blob back into the :class:`IntModel` it was made from."""
    h = read_header(bytes(data))
    secs = _sections(bytes(data), h)
    inp, hid, out = h["input"], h["hidden"], h["output"]

    def arr(raw: bytes, dtype: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
        a = np.frombuffer(raw, dtype=dtype).astype(dtype[1:])
        return a.reshape(shape) if shape else a

    try:
        doc = json.loads(secs[7].decode())
        meta = ModelMeta(**doc["meta"])
        cal = Calibration(**doc["calibration"])
        output_scale, input_scale = float(doc["output_scale"]), float(doc["input_scale"])
    except (ValueError, KeyError, TypeError, RecursionError) as exc:  # RecursionError: nested too deep
        raise _err(f"the metadata section is not valid ({exc})") from None
    nl, per, c = h["layers"], len(LAYER_SECTIONS), cell_type(h["cell"])
    window, back_fracs = 0, [0] * nl
    if h["bidirectional"]:
        window, *rest = BIDIR.unpack(secs[-1])
        back_fracs, reserved = rest[:MAX_LAYERS], rest[MAX_LAYERS]
        if any(back_fracs[nl:]) or reserved != bytes(3):
            raise _err("the window section's unused cell_frac entries or reserved bytes are not zero")
        if window < h["stack"]:
            raise _err(f"a window of {window} samples is shorter than one step of {h['stack']} samples")
        if meta.window != window:
            raise _err(f"the window section says {window} samples, the metadata {meta.window}")
    layers = []
    for k in range(nl * (2 if h["bidirectional"] else 1)):
        n = k % nl
        w, b, bhn, mult, shift, scale_exp = secs[8 + per * k : 8 + per * (k + 1)]
        width = inp * h["stack"] if n == 0 else hid
        layers.append(
            IntLayer(
                width,
                hid,
                arr(w, "<i1", (c.gates * hid, width + hid)),
                arr(b, "<i4"),
                arr(bhn, "<i4") if c.bias_hn else None,
                arr(mult, "<i4"),
                arr(shift, "<i1"),
                int(h["cell_frac"][n] if k < nl else back_fracs[n]),
                arr(scale_exp, "<i1"),
                h["hidden_bits"],
            )
        )
    m = IntModel(
        cell=h["cell"],
        layers=layers[:nl],
        head_w=arr(secs[3], "<i1", (out, hid * (2 if h["bidirectional"] else 1))),
        head_b=arr(secs[4], "<i4"),
        head_mult=arr(secs[5], "<i4"),
        head_shift=arr(secs[6], "<i1"),
        output_scale=output_scale,
        input_mean=arr(secs[1], "<f4"),
        input_mul=arr(secs[2], "<f4"),
        input_scale=input_scale,
        act_table=arr(secs[0], "<i2"),
        meta=meta,
        calibration=cal,
        readout=h["readout"],
        stack=h["stack"],
        backward=layers[nl:],
        input16=h["input16"],
    )
    # the int64 row sums' multipliers (an int16 h's rows, an int16 input's layer 0) stay below
    # 2^MULT16_BITS, as tl_model_check requires: golden's int64 products would overflow otherwise
    sum64 = layers if h["hidden_bits"] == HIDDEN16_BITS else layers[:1] if h["input16"] else []
    if any(np.any(L.mult.astype(np.int64) >= 1 << MULT16_BITS) for L in sum64):
        raise _err(f"a multiplier of an int64 row sum is 2^{MULT16_BITS} or more")
    biases = [m.head_b] + [b for L in layers for b in (L.bias, L.bias_hn) if b is not None]
    if any(np.any(np.abs(b.astype(np.int64)) > BIAS_LIMIT) for b in biases):
        raise _err(f"a bias exceeds {BIAS_LIMIT} (2^30) in magnitude (the kernel's accumulator bound)")
    if not (
        np.all(np.isfinite(m.input_mean)) and np.all(np.isfinite(m.input_mul)) and np.all(m.input_mul > 0)
    ):
        raise _err("the input normalisation constants contain NaN, infinity or a multiplier <= 0")
    try:  # the C reader's check too: its kernel reads the table's unsaturated part only
        qmath.stored_table(m.act_table)
    except ValueError as e:
        raise _err(str(e)) from None
    if m.model_hash != h["hash"]:
        raise _err(f"model hash {h['hash']:08x} in the header, but the arrays hash to {m.model_hash:08x}")
    return m
