# TinyLSTM for MicroPython, in plain Python: reads a .tlm model blob and runs the integer
# contract (docs/integer-contract.md) bit-exactly with the C kernel. Runs on stock MicroPython
# (no numpy) and on CPython, where it is unit-tested. Copy it with tinylstm_contract.py (the
# contract's constants, generated from contract/constants.py) and tinylstm_viper.py.
#
# The arithmetic mirrors contract/qmath.py function for function, with the same names (sat,
# rshift_round, requantize, tanh_q15, sigmoid_q15, cell_to_q12) on Python ints instead of numpy
# arrays; tests/vectors/qmath_vectors.json checks both and the C header on the same edge cases.
# The cells' steps are in CELL_STEPS, keyed by the names of the cell table (tinylstm_contract.CELLS).
#
#     import tinylstm_mpy
#     m = tinylstm_mpy.Model(open("model.tlm", "rb").read())
#     y = m.step(array("b", sample))   # array('h') of outputs, reused by the next step
#     (an int16-h model's samples are int16: array("h", sample); info()["input_bits"] says which)
#
# Hidden state: int8 Q0.7 (the default) or int16 Q0.15 with int8 weights (the blob header's hidden
# bits, 8 or 16; 0 in blobs written before the field means 8). An int16-h model is int16 end to end
# (int16x8): its input is int16, it keeps h (and each layer's input) in array('h'), and its layer 0
# reads the int16 input as it is (at most MAX_INPUT16 values per step, as the C kernel).
#
# Input stacking (the header's stack k > 1, docs/integer-contract.md "Input stacking"): layer 0 reads k
# samples side by side per recurrent step. step() puts each sample in its place of layer 0's input (the
# stack buffer, as tl_step does) and runs the layers on every k-th sample since the reset; at the others
# the head reads the held head input again (the last step's readout; zeros after the reset).
#
# Bidirectional window models (9 + 12L sections: docs/model-blob.md; docs/integer-contract.md "Bidirectional
# window models"): step() also keeps the window's samples; at its W-th sample since the reset the backward
# layers run over the window's W // k steps in reverse from a zero state, and the head reads [forward
# readout ; backward readout]; before that it reads zeros. The sample after the window's last resets first
# (the next window). state() gives the backward layers' h and c after the forward ones. int8 h only.
#
# Speed: the dot products run in @micropython.viper (tinylstm_viper.py: dots for int8 inputs,
# dots16 for int16 ones) reading the weights in place from the blob; without the native emitter a
# plain-Python loop is used instead.
# Integer width: the requantize product acc * M needs up to 63 bits. It is computed with Python
# ints: small ints on 64-bit ports; on 32-bit ports (31-bit small ints) MicroPython promotes it
# to a long int (MPZ or long long), which every port with room for a model enables. A port
# built with MICROPY_LONGINT_IMPL_NONE would overflow, so Model() refuses to run there.
#
# Style: %-formatting (f-strings are optional on small ports) and conditional expressions
# (cheaper than min()/max() calls in MicroPython's hot loop).
# ruff: noqa: UP031, FURB136
import struct
import sys
from array import array

_viper_dots = _viper_dots16 = None
if sys.implementation.name == "micropython":
    try:
        from tinylstm_viper import dots as _viper_dots
        from tinylstm_viper import dots16 as _viper_dots16
    except (ImportError, SyntaxError):  # a port without the native emitter (or an old tinylstm_viper.py)
        _viper_dots = _viper_dots16 = None

try:
    from binascii import crc32 as _crc32
except ImportError:  # pragma: no cover - ports without binascii.crc32
    _crc32 = None

from tinylstm_contract import (
    BIAS_LIMIT,
    BLOB_FORMAT_VERSION,
    BLOB_HEADER_SIZE,
    BLOB_INPUT16_FLAG,
    BLOB_MAGIC,
    CELL_FRAC_MAX,
    CELLS,
    HIDDEN16_BITS,
    HIDDEN16_FRAC,
    HIDDEN_BITS,
    HIDDEN_FRAC,
    KERNEL_VERSION,
    MAX_HIDDEN,
    MAX_INPUT,
    MAX_INPUT16,
    MAX_LAYERS,
    MAX_SCALE_EXP,
    MAX_STACK,
    MULT16_BITS,
    Q12,
    Q15,
    READOUTS,
    SHIFT_MAX,
    SHIFT_MIN,
    TABLE_SEGMENT_BITS,
    TABLE_SIZE,
)


class BlobError(ValueError):
    """The blob is malformed, truncated, corrupted or of another version."""


def crc32(data) -> int:
    if _crc32 is not None:
        return _crc32(data) & 0xFFFFFFFF
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0xEDB88320 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def _u16(b, o: int) -> int:
    return b[o] | (b[o + 1] << 8)


def _u32(b, o: int) -> int:
    return _u16(b, o) | (_u16(b, o + 2) << 16)


def _s8(v: int) -> int:
    return v - 256 if v > 127 else v


BIDIR_SECTION_SIZE = 8  # a bidirectional model's last section (docs/model-blob.md)


def _err(problem: str) -> BlobError:
    return BlobError("bad model blob: " + problem + "; regenerate it with tinylstm.codegen.blob.to_blob")


def read_sections(blob) -> tuple:
    """Check header, CRC and section table; return (header dict, [(offset, size)] per section)."""
    n = len(blob)
    if n < BLOB_HEADER_SIZE:
        raise _err("shorter than the header (truncated file?)")
    if bytes(blob[0:4]) != BLOB_MAGIC:
        raise _err("wrong magic (not a .tlm file)")
    if _u16(blob, 4) != BLOB_FORMAT_VERSION:
        raise _err("format version %d, this reader reads %d" % (_u16(blob, 4), BLOB_FORMAT_VERSION))
    if _u16(blob, 6) != KERNEL_VERSION:
        raise _err("kernel version %d, this reader runs %d" % (_u16(blob, 6), KERNEL_VERSION))
    total = _u32(blob, 12)
    if total < BLOB_HEADER_SIZE or total > n:
        raise _err("header says %d bytes, %d present (truncated file?)" % (total, n))
    if crc32(memoryview(blob)[12:total]) != _u32(blob, 8):
        raise _err("CRC-32 mismatch (corrupted file)")
    cell, layers, nsec = blob[20], blob[21], _u16(blob, 22)
    inp, hid, out = _u16(blob, 24), _u16(blob, 26), _u16(blob, 28)
    if cell >= len(CELLS):
        raise _err("unknown cell type %d" % cell)
    name, g, _, bias_hn = CELLS[cell]
    if not (1 <= layers <= MAX_LAYERS and 1 <= inp <= MAX_INPUT and 1 <= hid <= MAX_HIDDEN and out >= 1):
        raise _err("unsupported shape")
    input16 = blob[30] & BLOB_INPUT16_FLAG != 0  # an int16 input on an int8 h
    hidden_bits = (blob[30] & ~BLOB_INPUT16_FLAG) or HIDDEN_BITS  # 0: a blob written before the field, int8 h
    if blob[31] >= len(READOUTS):  # 0 (last) in blobs written before the field
        raise _err("unknown readout %d" % blob[31])
    if hidden_bits != HIDDEN_BITS and hidden_bits != HIDDEN16_BITS:
        raise _err(
            "hidden state of %d bits; this reader runs %d or %d" % (hidden_bits, HIDDEN_BITS, HIDDEN16_BITS)
        )
    stack = blob[35] or 1  # samples per step; 0 (one) in blobs written before the field
    if stack > MAX_STACK or inp * stack > MAX_INPUT:
        raise _err("%d samples of %d channels per step exceed the kernel's %d" % (stack, inp, MAX_INPUT))
    if input16 and hidden_bits != HIDDEN_BITS:
        raise _err("the int16-input flag on a %d-bit hidden state (it is for an int8 one)" % hidden_bits)
    wide_in = input16 or hidden_bits == HIDDEN16_BITS  # an int16 input
    if wide_in and inp * stack > MAX_INPUT16:  # its int32 input sums stay exact
        raise _err(
            "a model reading %d int16 inputs per step (%d x %d), the kernel's at most %d"
            % (inp * stack, stack, inp, MAX_INPUT16)
        )
    # 8 + 6L sections; a bidirectional model's 9 + 12L (its backward layers' and its window section follow)
    bidir = nsec == 9 + 12 * layers
    if (nsec != 8 + 6 * layers and not bidir) or _u32(blob, 36) != BLOB_HEADER_SIZE:
        raise _err("section table does not match the layer count")
    if bidir and wide_in:
        raise _err("a bidirectional model with an int16 hidden state or input (it keeps int8 ones)")
    sizes = [2 * TABLE_SIZE, 4 * inp, 4 * inp, out * hid * (2 if bidir else 1), 4 * out, 4 * out, out, None]
    for k in range(layers * (2 if bidir else 1)):
        w = (inp * stack if k % layers == 0 else hid) + hid
        sizes += [g * hid * w, 4 * g * hid, 4 * hid if bias_hn else 0, 4 * g * hid, g * hid, g * hid]
    if bidir:
        sizes.append(BIDIR_SECTION_SIZE)
    table_end = BLOB_HEADER_SIZE + 8 * nsec
    if table_end > total:
        raise _err("header says %d bytes, too few for its section table (truncated file?)" % total)
    secs = []
    for k in range(nsec):
        off, size = _u32(blob, BLOB_HEADER_SIZE + 8 * k), _u32(blob, BLOB_HEADER_SIZE + 8 * k + 4)
        if (sizes[k] is not None and size != sizes[k]) or off % 4 or off < table_end or off + size > total:
            raise _err("section %d is misplaced or has the wrong size" % k)
        secs.append((off, size))
    window, back_frac = 0, []
    if bidir:  # u16 window, i8 cell_frac of the backward layers (unused entries 0), 3 reserved zero bytes
        off = secs[-1][0]
        window = _u16(blob, off)
        if window < stack:
            raise _err("a window of %d samples is shorter than one step of %d samples" % (window, stack))
        for k in range(2 + layers, BIDIR_SECTION_SIZE):
            if blob[off + k]:
                raise _err("the window section's unused cell_frac entries or reserved bytes are not zero")
        back_frac = [_s8(blob[off + 2 + k]) for k in range(layers)]
    head = {
        "cell": name,
        "layers": layers,
        "input_size": inp,
        "hidden_size": hid,
        "output_size": out,
        "hash": _u32(blob, 16),
        "kernel_version": KERNEL_VERSION,
        "hidden_bits": hidden_bits,
        "input_bits": 16 if wide_in else 8,  # int16: an int16-h model's, or an int16 input on an int8 h
        "readout": READOUTS[blob[31]][0],
        "stack": stack,
        "window": window,  # a bidirectional model's W samples; 0: unidirectional
        "cell_frac": [_s8(blob[32 + k]) for k in range(layers)],
        "backward_cell_frac": back_frac,
    }
    return head, secs


def read_meta(blob) -> dict:
    """The blob's metadata (task, classes, mode, window, scales): a dict decoded from its JSON section."""
    import json

    off, size = read_sections(blob)[1][7]
    # bad JSON raises ValueError, nesting too deep for the parser RuntimeError (CPython: RecursionError)
    try:
        meta = json.loads(bytes(blob[off : off + size]))
    except (ValueError, RuntimeError):
        meta = None
    if not isinstance(meta, dict):
        raise _err("the metadata section is not a JSON object")
    return meta


def _ints(blob, sec: tuple, code: str) -> tuple:
    off, size = sec
    n = size // struct.calcsize(code)
    return struct.unpack_from("<%d%s" % (n, code), blob, off)


# the forms of a sample (Model._sample_kind)
_FLOATS, _WORDS, _RAW = 0, 1, 2


def _typecode(x):
    """An array's typecode ('b', 'h', 'f', ...); None for any other sequence. MicroPython's arrays have no
    .typecode attribute: the repr of an empty slice names it, "array('h')"."""
    return repr(x[:0])[7] if isinstance(x, array) else None


def _sample_bytes(x, code) -> bool:
    """Whether ``x`` (of _typecode ``code``) holds raw bytes (bytes, bytearray, array('B')), not values."""
    return code == "B" or isinstance(x, (bytes, bytearray))


_INF = float("inf")
_NEG_INF = -_INF  # kept: negating in the loop would allocate a float per value


def _nan_error(k: int) -> ValueError:
    return ValueError(
        "input sample contains NaN or infinity (sample[%d]): clean or impute the samples first" % k
    )


def _check_finite(x) -> None:
    lo, hi = _NEG_INF, _INF
    for k in range(len(x)):
        if not lo < x[k] < hi:  # False for NaN and +-inf (the C test, v - v != 0, without a float per value)
            raise _nan_error(k)


def _type_name(v) -> str:
    return type(v).__name__


def _check_out(out, n: int, what: str) -> None:
    """Refuse an ``out`` that is not an array('h') of at least ``n`` values (``what``: where n comes from)
    with a ValueError, before the state changes: MicroPython would store the int16 outputs wrapped into an
    array('b'), and a short array would fail half way."""
    code = _typecode(out)
    if code != "h" or len(out) < n:
        got = "an array('%s') of %d values" % (code, len(out)) if code else "of type " + _type_name(out)
        raise ValueError(
            "out is %s; pass an array('h') of at least %d values (%s), e.g. array('h', bytes(%d))"
            % (got, n, what, 2 * n)
        )


def _plain_dots(w, woff: int, xh, accx, acch, rows: int, nx: int, nh: int) -> None:
    width = nx + nh
    p = woff
    for r in range(rows):
        s = 0
        for k in range(nx):
            s += w[p + k] * xh[k]
        accx[r] = s
        s = 0
        for k in range(nx, width):
            s += w[p + k] * xh[k]
        acch[r] = s
        p += width


# ---- the integer contract: contract/qmath.py, function for function, on Python ints ----


def sat(x: int, bits: int) -> int:
    """Saturate to a signed ``bits``-wide integer."""
    lo = -(1 << (bits - 1))
    hi = (1 << (bits - 1)) - 1
    return lo if x < lo else (hi if x > hi else x)


def rshift_round(x: int, n: int) -> int:
    """Arithmetic right shift by ``n >= 1`` with round-half-up: ``(x + 2^(n-1)) >> n``."""
    return (x + (1 << (n - 1))) >> n


def requantize(acc: int, mult: int, shift: int) -> int:
    """The one requantization rule, ``(acc * M + 2^(s-1)) >> s``: exact on Python ints (>> floors like C)."""
    return (acc * mult + (1 << (shift - 1))) >> shift


def tanh_q15(x: int, table) -> int:
    """tanh of a Q3.12 int16 input, Q0.15 output, by linear interpolation in ``table``."""
    u = x + 32768
    i = u >> TABLE_SEGMENT_BITS
    t0 = table[i]
    return t0 + (
        ((table[i + 1] - t0) * (u & ((1 << TABLE_SEGMENT_BITS) - 1)) + (1 << (TABLE_SEGMENT_BITS - 1)))
        >> TABLE_SEGMENT_BITS
    )


def sigmoid_q15(x: int, table) -> int:
    """sigmoid(x) = (1 + tanh(x / 2)) / 2 on the same table; output in [0, 32767]."""
    return (tanh_q15(x >> 1, table) + 32768) >> 1


def cell_to_q12(c: int, cell_frac: int) -> int:
    """Bring the cell state from Q(15-F).F to the Q3.12 tanh input."""
    if cell_frac > Q12:
        return rshift_round(c, cell_frac - Q12)
    if cell_frac < Q12:
        return sat(c << (Q12 - cell_frac), 16)
    return c


def _hidden_frac(bits: int) -> int:
    return HIDDEN16_FRAC if bits == HIDDEN16_BITS else HIDDEN_FRAC


def hidden_from_q15(v: int, bits: int) -> int:
    """A Q0.15 value as a hidden-state word of ``bits`` bits: sat8(rsr(v, 8)) for int8 Q0.7, sat16(v) for
    int16 Q0.15."""
    d = Q15 - _hidden_frac(bits)
    return sat(rshift_round(v, d) if d else v, bits)


def hidden_to_q15(h: int, bits: int) -> int:
    """A hidden-state word of ``bits`` bits in Q0.15: h * 2^(15 - frac)."""
    return h << (Q15 - _hidden_frac(bits))


def _pre(acc: int, mult: int, shift: int) -> int:
    """A Q3.12 pre-activation: sat16(requantize(acc))."""
    return sat(requantize(acc, mult, shift), 16)


class _Layer:
    """Weight rows (a recurrent layer's gates, or the head) and, for a layer, its state."""

    def __init__(
        self,
        blob,
        secs: list,
        idx: tuple,
        nx: int,
        nh: int,
        frac: int,
        use_viper: bool,
        hidden_bits: int = HIDDEN_BITS,
        mult_limit: int = 1 << 31,
        wide_x: bool = False,
    ):
        w, b, bhn, m, s, e = (
            idx  # section numbers; bhn None: no separate recurrent bias; e None: no scale_exp
        )
        if use_viper:  # viper reads the int8 weights in place from the blob
            self.w, self.woff = blob, secs[w][0]
        else:
            self.w, self.woff = array("b", _ints(blob, secs[w], "b")), 0
        self.bias = _ints(blob, secs[b], "i")
        self.bias_hn = _ints(blob, secs[bhn], "i") if bhn is not None else ()
        self.mult = _ints(blob, secs[m], "i")
        self.shift = _ints(blob, secs[s], "b")
        scale_exp = _ints(blob, secs[e], "b") if e is not None else (0,) * len(self.shift)
        # acc = acc_x * 2^max(e,0) + acc_h * 2^max(-e,0): the two parts of a row at one scale
        self.ax = [v if v > 0 else 0 for v in scale_exp]
        self.ah = [-v if v < 0 else 0 for v in scale_exp]
        self.nx, self.nh, self.frac = nx, nh, frac
        self.hidden_bits, self.hidden_frac = hidden_bits, _hidden_frac(hidden_bits)
        self.rows = len(self.bias)
        for v in self.bias + self.bias_hn:
            if v > BIAS_LIMIT or v < -BIAS_LIMIT:
                raise _err("a bias exceeds 2^30")
        for k in range(self.rows):
            if (
                not SHIFT_MIN <= self.shift[k] <= SHIFT_MAX
                or not 0 <= self.mult[k] < mult_limit
                or not -MAX_SCALE_EXP <= scale_exp[k] <= MAX_SCALE_EXP
            ):
                raise _err("a requantization shift, multiplier or scale exponent is out of range")
        # [x ; h]: the rows' input (a layer: its input and hidden state), int8 or int16 words like h; int16
        # for an int16 input's layer 0 (``wide_x``: its int8 h in int16 words)
        self.wide = wide = hidden_bits == HIDDEN16_BITS or wide_x
        self.xh = array("h", bytes(2 * (nx + nh))) if wide else array("b", bytes(nx + nh))
        self.c = [0] * nh
        self.accx = array("i", bytes(4 * self.rows))
        self.acch = array("i", bytes(4 * self.rows))


class Model:
    """One stream of a .tlm model: step / run / reset, bit-exact with the C kernel."""

    def __init__(self, blob, viper: bool = True):
        if (1 << 62) >> 61 != 2:
            raise RuntimeError("this MicroPython has no long ints; the fallback needs them: use the C module")
        head, secs = read_sections(blob)
        self.blob = blob
        self._info = head
        self.cell = head["cell"]
        I, H, O = head["input_size"], head["hidden_size"], head["output_size"]
        self.input_size, self.hidden_size, self.output_size = I, H, O
        self.stacking = K = head["stack"]  # samples per recurrent step (1: no stacking)
        self.hidden_bits = hb = head["hidden_bits"]
        self.input_bits = head["input_bits"]  # the samples' words: int8, or int16 (int16-h, an int16 input)
        self._top = (1 << (self.input_bits - 1)) - 1  # the largest input word: 127 or 32767
        wide = hb == HIDDEN16_BITS
        input16 = self.input_bits == HIDDEN16_BITS and not wide  # an int16 input on an int8 h
        use_viper = viper and _viper_dots is not None
        # the dot products of rows over int8 or int16 words (a layer's: by its [x ; h] array, _Layer.wide)
        self._dots8, self._dots16 = (_viper_dots, _viper_dots16) if use_viper else (_plain_dots, _plain_dots)
        self._dots = self._dots16 if wide else self._dots8
        self.table = _ints(blob, secs[0], "h")
        self.mean = _ints(blob, secs[1], "f")
        self.mul = _ints(blob, secs[2], "f")
        for v in self.mean + self.mul:
            if not v - v == 0.0:  # NaN or +-inf, the C test
                raise _err("the input normalisation constants contain NaN, infinity or a multiplier <= 0")
        for v in self.mul:
            if not v > 0.0:
                raise _err("the input normalisation constants contain NaN, infinity or a multiplier <= 0")
        # W: a bidirectional model's window (0: unidirectional); its head reads [v_f ; v_b], 2H values
        self.window = W = head["window"]
        self.head = _Layer(blob, secs, (3, 4, None, 5, 6, None), 0, 2 * H if W else H, 0, use_viper, hb)
        _, _, has_c, bias_hn = next(c for c in CELLS if c[0] == self.cell)
        self._cell_step = CELL_STEPS[self.cell]
        NL = head["layers"]
        fracs = head["cell_frac"] + head["backward_cell_frac"]
        # the sections of the forward layers, then of a bidirectional model's backward ones
        sec = [8 + 6 * k for k in range(len(fracs))]
        stacks = [
            _Layer(
                blob,
                secs,
                (sec[k], sec[k] + 1, sec[k] + 2 if bias_hn else None, sec[k] + 3, sec[k] + 4, sec[k] + 5),
                I * K if k % NL == 0 else H,
                H,
                fracs[k],
                use_viper,
                hb,
                # int16-h gate rows and an int16 input's layer 0 (int64 sums): M < 2^MULT16_BITS, as
                # tl_model_check requires
                1 << (MULT16_BITS if wide or (input16 and k == 0) else 31),
                input16 and k == 0,
            )
            for k in range(len(fracs))
        ]
        for k, L in enumerate(stacks):
            if has_c and not 0 <= L.frac <= CELL_FRAC_MAX:
                what = "layer %d" % k if k < NL else "backward layer %d" % (k - NL)
                raise _err("%s cell state fraction %d is outside 0..%d" % (what, L.frac, CELL_FRAC_MAX))
        self.layers, self.backward = stacks[:NL], stacks[NL:]
        self.out = array("h", bytes(2 * O))
        # the last `out` step() took and checked: an array('h') (its typecode cannot change; its length is
        # checked again at each step)
        self._out_ok = None
        self._f32 = array("f", [0.0])
        self.steps = 0
        self.readout = head["readout"]
        self._readout_step = READOUT_STEPS[self.readout]
        self.pool = [0] * H  # a pooled readout's int32 per unit (contract/readouts.py)
        # a stacked model's inputs of the step being filled (tl_state_t.stack, stack16): layer 0's x part, a
        # live view (the input words: int8, int16 in an int16-h model's array('h')); phase: the samples in it
        self.stack = memoryview(self.layers[0].xh)[: I * K if K > 1 else 0]
        self.phase = 0
        # the forward readout of the last step (the head's input, but for a bidirectional model, whose head
        # reads zeros until the window's end: then [vf ; vb])
        self.vf = array("b", bytes(H)) if W else self.head.xh
        # a bidirectional model's window (tl_state_t.window, wpos), backward readout and pool
        self.win = array("b", bytes(W * I))
        self.wpos = 0
        self.vb = array("b", bytes(H if W else 0))
        self.pool_b = [0] * (H if W else 0)

    def info(self) -> dict:
        d = dict(self._info)
        del d["cell_frac"]
        del d["backward_cell_frac"]
        return d

    def reset(self) -> None:
        for L in self.layers + self.backward:
            for j in range(L.nh):
                L.xh[L.nx + j] = 0
                L.c[j] = 0
        hd = self.head
        for j in range(hd.nh):  # the held head input: a stacked model's head reads it before its first step
            hd.xh[j] = 0
        for j in range(self.hidden_size):
            self.vf[j] = 0
            self.pool[j] = 0
        for j in range(len(self.vb)):
            self.vb[j] = 0
            self.pool_b[j] = 0
        for k in range(len(self.stack)):  # every state word zero after a reset, as tl_reset leaves them
            self.stack[k] = 0
        for k in range(len(self.win)):
            self.win[k] = 0
        self.steps = 0
        self.phase = 0
        self.wpos = 0

    def _round32(self, v: float) -> float:
        self._f32[0] = v  # store as float32: rounds like C float arithmetic
        return self._f32[0]

    def quantize(self, x, q=None, off: int = 0):
        """float sample [input_size] -> the model's input words (or into ``q`` from index ``off``), exactly as
        tl_quantize_input (int8: array('b')) or, for an int16-h model, tl_quantize_input_s16 (int16:
        array('h')): float32 arithmetic, saturated, rounded half away from zero."""
        if len(x) != self.input_size:
            raise ValueError("sample has %d values, the model takes %d" % (len(x), self.input_size))
        _check_finite(x)
        if q is None:
            wide = self.input_bits == HIDDEN16_BITS
            q = array("h" if wide else "b", bytes((2 if wide else 1) * self.input_size))
        self._quantize(x, q, off)
        return q

    def _quantize(self, x, q, off: int) -> None:
        """quantize() of a checked sample."""
        r, top = self._round32, self._top
        for k in range(self.input_size):
            v = r(r(r(x[k]) - self.mean[k]) * self.mul[k])
            if v >= top:
                q[off + k] = top
            elif v <= -top - 1:
                q[off + k] = -top - 1
            else:
                q[off + k] = int(r(v + (0.5 if v >= 0.0 else -0.5)))

    def _sample_kind(self, x) -> int:
        """Check one sample without touching the state: _FLOATS, _WORDS (the model's input words: an array of
        its type, or ints in its range) or _RAW (bytes-like: int8, or little-endian int16). Raises ValueError
        naming what is wrong."""
        I, wide = self.input_size, self.input_bits == HIDDEN16_BITS
        code = _typecode(x)
        if _sample_bytes(x, code):
            if len(x) != (2 * I if wide else I):
                raise ValueError(
                    "sample has %d bytes, the model takes %d (%d int%d values)"
                    % (len(x), 2 * I if wide else I, I, self.input_bits)
                )
            return _RAW
        if len(x) != I:
            raise ValueError("sample has %d values, the model takes %d" % (len(x), I))
        top = self._top
        if code is not None:  # an array: its typecode says what every item is
            if code == "f" or code == "d":
                _check_finite(x)
                return _FLOATS
            if code != ("h" if wide else "b"):
                raise ValueError(
                    "sample is an array('%s'); the model takes int%d samples: array('%s'), ints in %d..%d, "
                    "raw bytes (%d a value) or floats"
                    % (code, self.input_bits, "h" if wide else "b", -top - 1, top, 2 if wide else 1)
                )
            return _WORDS
        # A list, a tuple...: every item a finite float, or every item an int in the input's range; one pass,
        # no allocation (the slow path, _item_error, finds what is wrong). Ints by type(), not isinstance():
        # a bool is an int in CPython, not in MicroPython; both refuse it so.
        if isinstance(x[0], float):
            lo, hi = _NEG_INF, _INF
            for k in range(I):
                v = x[k]
                if not (isinstance(v, float) and lo < v < hi):
                    raise self._item_error(x)
            return _FLOATS
        lo = -top - 1
        for k in range(I):
            v = x[k]
            if type(v) is not int or v > top or v < lo:
                raise self._item_error(x)
        return _WORDS

    def _item_error(self, x) -> ValueError:
        """The ValueError for a sample (not an array, not bytes) whose items are not all finite floats or all
        ints in the input's range: the first non-number, NaN or infinity, int among floats (or float among
        ints), or value out of range, in that order."""
        bits, top = self.input_bits, self._top
        words = "the model's int%d input words (ints in %d..%d)" % (bits, -top - 1, top)
        if isinstance(x, str):
            return ValueError("sample is a str; pass %s or floats" % words)
        for k in range(len(x)):
            v = x[k]
            if not isinstance(v, float) and type(v) is not int:
                return ValueError(
                    "sample[%d] is of type %s, not int or float: pass %s or floats"
                    % (k, _type_name(v), words)
                )
        for k in range(len(x)):
            if isinstance(x[k], float) and not _NEG_INF < x[k] < _INF:
                return _nan_error(k)
        floats = isinstance(x[0], float)
        for k in range(len(x)):
            v = x[k]
            if isinstance(v, float) != floats:
                return ValueError(
                    "sample mixes ints and floats (sample[0] is %s, sample[%d] %s): pass all ints, %s, "
                    "or all floats, quantized as Model.quantize does"
                    % ("a float" if floats else "an int", k, "an int" if floats else "a float", words)
                )
            if not floats and (v > top or v < -top - 1):
                return ValueError(
                    "sample value %d is outside the model's int%d input (%d..%d): quantize float samples "
                    "with Model.quantize" % (v, bits, -top - 1, top)
                )
        return ValueError("sample refused")  # not reached: _sample_kind found a problem

    def _put(self, x, kind: int, q, off: int) -> None:
        """A checked sample of ``kind`` (_sample_kind) as input words into q[off:off + input_size]."""
        if kind == _FLOATS:
            self._quantize(x, q, off)
        elif kind == _WORDS:
            for k in range(self.input_size):
                q[off + k] = x[k]
        elif self.input_bits == HIDDEN16_BITS:  # little-endian int16
            for k in range(self.input_size):
                v = x[2 * k] | (x[2 * k + 1] << 8)
                q[off + k] = v - 65536 if v > 32767 else v
        else:
            for k in range(self.input_size):
                v = x[k]
                q[off + k] = v - 256 if v > 127 else v

    def step(self, x, out=None):
        """One sample -> outputs in ``out`` (array('h') [output_size]) or in the model's own array, reused.
        The sample: the model's input words (info()["input_bits"]: int8, or int16 for an int16-h model) as
        array('b') / array('h'), a list of ints in the type's range, or raw bytes (int8; little-endian int16);
        or floats (array('f'), a list), quantized as quantize() does. A sample of the wrong length, type or
        range raises ValueError and leaves the state alone.
        A stacked model runs its layers on every k-th sample; the others give the head of the held readout.
        A bidirectional model's sample after the window's last resets first; the head reads zeros until the
        window's last sample, where the backward pass runs. An ``out`` that is not an array('h') of at least
        output_size values raises ValueError, the state left alone."""
        kind = self._sample_kind(x)
        if out is not None and (out is not self._out_ok or len(out) < self.output_size):
            _check_out(out, self.output_size, "the model's output_size")
            self._out_ok = out
        I, W = self.input_size, self.window
        if W and self.wpos == W:  # the next window starts: the kernel resets first
            self.reset()
        xh = self.layers[0].xh
        off = self.phase * I  # the sample's place in layer 0's input (the stack buffer)
        self._put(x, kind, xh, off)
        if W:  # the window keeps the sample too
            win, pos = self.win, self.wpos * I
            for k in range(I):
                win[pos + k] = xh[off + k]
            self.wpos += 1
        if self.stacking > 1:
            self.phase += 1
            if self.phase < self.stacking:
                return self._answer(out)
            self.phase = 0
        last = self._layers_step(self.layers)
        vf = self.vf
        for j in range(self.hidden_size):  # the readout: the last layer's new h
            vf[j] = last.xh[last.nx + j]
        if self._readout_step is not None:  # or what the readout makes of it
            self._readout_step(self.pool, vf, self.steps + 1 if self.steps < INT32_MAX else INT32_MAX)
        self.steps += 1
        return self._answer(out)

    def _layers_step(self, layers):
        """One recurrent step of ``layers`` (a direction's stack), layer 0's input in place; returns the top
        layer."""
        t, cell_step = self.table, self._cell_step
        for n, L in enumerate(layers):
            (self._dots16 if L.wide else self._dots8)(L.w, L.woff, L.xh, L.accx, L.acch, L.rows, L.nx, L.nh)
            hn = cell_step(L, t)
            nxt = layers[n + 1].xh if n + 1 < len(layers) else None
            for j in range(L.nh):
                L.xh[L.nx + j] = hn[j]
                if nxt is not None:
                    nxt[j] = hn[j]
        return layers[-1]

    def _answer(self, out):
        """The head of what it reads at this sample; a bidirectional model's window end runs the backward
        pass first."""
        if self.window and self.wpos == self.window:
            self._backward()
        return self._head(out)

    def _backward(self) -> None:
        """The backward layers over the window's S = W // k steps, last step first, from the zero state of the
        reset (tl_bidir.c); the head then reads [vf ; vb]."""
        layers, win, vb, H = self.backward, self.win, self.vb, self.hidden_size
        width = self.input_size * self.stacking
        S = self.window // self.stacking
        x0 = layers[0].xh
        for s in range(S):
            base = (S - 1 - s) * width
            for k in range(width):
                x0[k] = win[base + k]
            last = self._layers_step(layers)
            for j in range(H):
                vb[j] = last.xh[last.nx + j]
            if self._readout_step is not None:
                self._readout_step(self.pool_b, vb, s + 1)
        hx, vf = self.head.xh, self.vf
        for j in range(H):
            hx[j] = vf[j]
            hx[H + j] = vb[j]

    def _head(self, out):
        """The dense head of hd.xh (the last step's readout; a bidirectional model's [vf ; vb] or zeros) ->
        ``out`` or the model's own array."""
        hd = self.head
        self._dots(hd.w, hd.woff, hd.xh, hd.accx, hd.acch, hd.rows, 0, hd.nh)
        y = out if out is not None else self.out
        for o in range(self.output_size):
            y[o] = _pre(hd.acch[o] + hd.bias[o], hd.mult[o], hd.shift[o])
        return y

    def run(self, xs, out=None):
        """Samples [T * input_size] (flat; any form step() takes) -> array('h') [T * output_size] (or ``out``:
        an array('h') of at least T * output_size values, else ValueError before any step), continuing the
        state."""
        I, O = self.input_size, self.output_size
        n = (
            2 * I if self.input_bits == HIDDEN16_BITS and _sample_bytes(xs, _typecode(xs)) else I
        )  # one sample's items
        if len(xs) % n:
            raise ValueError("run() takes whole samples: %d items are not a multiple of %d" % (len(xs), n))
        T = len(xs) // n
        if out is not None:
            _check_out(out, T * O, "T * output_size = %d * %d" % (T, O))
        ys = out if out is not None else array("h", bytes(2 * O * T))
        y = self.out
        for s in range(T):
            self.step(xs[s * n : (s + 1) * n])
            for o in range(O):
                ys[s * O + o] = y[o]
        return ys

    def state(self) -> tuple:
        """(h, c) as raw little-endian bytes: h [layers * hidden] int8 (int16 for an int16-h model), c int16
        [layers * hidden]; a bidirectional model's [2 * layers * hidden], the backward layers after the
        forward ones."""
        stacks = self.layers + self.backward
        n = len(stacks) * self.hidden_size
        h = array("h", bytes(2 * n)) if self.hidden_bits == HIDDEN16_BITS else array("b", bytes(n))
        c = array("h", bytes(2 * n))
        k = 0
        for L in stacks:
            for j in range(L.nh):
                h[k] = L.xh[L.nx + j]
                c[k] = L.c[j]
                k += 1
        return bytes(h), bytes(c)


# ---- the cells: contract/cells.py's integer steps, one function each ----


def lstm_step(L, t) -> list:
    """One LSTM layer step (gates i, f, g, o) from the rows' accumulators; updates L.c, returns the new h."""
    H, F = L.nh, L.frac
    hbits, hshift = L.hidden_bits, 2 * Q15 - L.hidden_frac
    b, m, s = L.bias, L.mult, L.shift
    acc = [(x << sx) + (h << sh) + bb for x, h, sx, sh, bb in zip(L.accx, L.acch, L.ax, L.ah, b)]
    c, hn = L.c, [0] * H
    for j in range(H):
        i = sigmoid_q15(_pre(acc[j], m[j], s[j]), t)
        r = H + j
        f = sigmoid_q15(_pre(acc[r], m[r], s[r]), t)
        r += H
        g = tanh_q15(_pre(acc[r], m[r], s[r]), t)
        r += H
        o = sigmoid_q15(_pre(acc[r], m[r], s[r]), t)
        ig = rshift_round(i * g, Q15 - F)
        cn = sat(rshift_round(f * c[j] + ig, Q15), 16)
        c[j] = cn
        hn[j] = sat(rshift_round(o * tanh_q15(cell_to_q12(cn, F), t), hshift), hbits)
    return hn


def gru_step(L, t) -> list:
    """One GRU layer step (gates r, z, n; n = tanh(W_in x + b_in + r * (W_hn h + b_hn))); returns the
    new h."""
    H, nx, hbits = L.nh, L.nx, L.hidden_bits
    b, bhn, m, s = L.bias, L.bias_hn, L.mult, L.shift
    ax = [x << sx for x, sx in zip(L.accx, L.ax)]
    ah = [h << sh for h, sh in zip(L.acch, L.ah)]
    xh, hn = L.xh, [0] * H
    for j in range(H):
        r = sigmoid_q15(_pre(ax[j] + ah[j] + b[j], m[j], s[j]), t)
        k = H + j
        z = sigmoid_q15(_pre(ax[k] + ah[k] + b[k], m[k], s[k]), t)
        k += H
        n_x = _pre(ax[k] + b[k], m[k], s[k])
        n_h = _pre(ah[k] + bhn[j], m[k], s[k])
        n = tanh_q15(sat(n_x + rshift_round(r * n_h, Q15), 16), t)
        h15 = hidden_to_q15(xh[nx + j], hbits)
        hn[j] = hidden_from_q15(n + rshift_round(z * (h15 - n), Q15), hbits)
    return hn


def rnn_step(L, t) -> list:
    """One Elman RNN layer step (one row per unit: h' = tanh(W_ih x + b_ih + W_hh h + b_hh)); returns the new
    h."""
    hbits, b, m, s = L.hidden_bits, L.bias, L.mult, L.shift
    hn = [0] * L.nh
    for j in range(L.nh):
        acc = (L.accx[j] << L.ax[j]) + (L.acch[j] << L.ah[j]) + b[j]
        hn[j] = hidden_from_q15(tanh_q15(_pre(acc, m[j], s[j]), t), hbits)
    return hn


CELL_STEPS = {"lstm": lstm_step, "gru": gru_step, "rnn": rnn_step}


# ---- the readouts: contract/readouts.py's pooling, one function each (None: the head reads h) ----

INT32_MAX = (1 << 31) - 1


def mean_readout(pool, h, n) -> None:
    """pool = sat32(pool + h) (h at n == 1); h = floor(pool / n + 1/2), in place."""
    for j in range(len(pool)):
        s = h[j] if n == 1 else pool[j] + h[j]
        s = INT32_MAX if s > INT32_MAX else -INT32_MAX - 1 if s < -INT32_MAX - 1 else s
        pool[j] = s
        q = s // n  # floor division
        h[j] = q + 1 if 2 * (s - q * n) >= n else q


def max_readout(pool, h, n) -> None:
    """pool = max(pool, h) (h at n == 1); h = pool, in place."""
    for j in range(len(pool)):
        v = h[j] if n == 1 or h[j] > pool[j] else pool[j]
        pool[j] = v
        h[j] = v


READOUT_STEPS = {"last": None, "mean": mean_readout, "max": max_readout}
