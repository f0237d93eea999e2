# TinyLSTM for MicroPython, in plain Python: reads a .tlm model blob and runs the integer
# contract (docs/integer-contract.md) bit-exactly with the C kernel. Runs on stock MicroPython
# (no numpy) and on CPython, where it is unit-tested.
#
#     import tinylstm_mpy
#     m = tinylstm_mpy.Model(open("model.tlm", "rb").read())
#     y = m.step(array("b", sample))   # array('h') of outputs, reused by the next step
#
# Speed: the dot products run in @micropython.viper (tinylstm_viper.py) reading the weights in
# place from the blob; without the native emitter a plain-Python loop is used instead.
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

_viper_dots = None
if sys.implementation.name == "micropython":
    try:
        from tinylstm_viper import dots as _viper_dots
    except (ImportError, SyntaxError):  # a port without the native emitter
        pass

try:
    from binascii import crc32 as _crc32
except ImportError:  # pragma: no cover - ports without binascii.crc32
    _crc32 = None

FORMAT_VERSION = 1
KERNEL_VERSION = 1
HEADER_SIZE = 40
CELLS = ("lstm", "gru")
GATES = (4, 3)
MAX_LAYERS, MAX_INPUT, MAX_HIDDEN = 3, 1024, 256
BIAS_LIMIT = 1 << 30


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


def _err(problem: str) -> BlobError:
    return BlobError("bad model blob: " + problem + "; regenerate it with tinylstm.codegen.blob.to_blob")


def read_sections(blob) -> tuple:
    """Check header, CRC and section table; return (header dict, [(offset, size)] per section)."""
    n = len(blob)
    if n < HEADER_SIZE:
        raise _err("shorter than the header (truncated file?)")
    if bytes(blob[0:4]) != b"TLM1":
        raise _err("wrong magic (not a .tlm file)")
    if _u16(blob, 4) != FORMAT_VERSION:
        raise _err("format version %d, this reader reads %d" % (_u16(blob, 4), FORMAT_VERSION))
    if _u16(blob, 6) != KERNEL_VERSION:
        raise _err("kernel version %d, this reader runs %d" % (_u16(blob, 6), KERNEL_VERSION))
    total = _u32(blob, 12)
    if total < HEADER_SIZE or total > n:
        raise _err("header says %d bytes, %d present (truncated file?)" % (total, n))
    if crc32(memoryview(blob)[12:total]) != _u32(blob, 8):
        raise _err("CRC-32 mismatch (corrupted file)")
    cell, layers, nsec = blob[20], blob[21], _u16(blob, 22)
    inp, hid, out = _u16(blob, 24), _u16(blob, 26), _u16(blob, 28)
    if cell > 1:
        raise _err("unknown cell type %d" % cell)
    if not (1 <= layers <= MAX_LAYERS and 1 <= inp <= MAX_INPUT and 1 <= hid <= MAX_HIDDEN and out >= 1):
        raise _err("unsupported shape")
    if nsec != 8 + 6 * layers or _u32(blob, 36) != HEADER_SIZE:
        raise _err("section table does not match the layer count")
    g = GATES[cell]
    sizes = [514, 4 * inp, 4 * inp, out * hid, 4 * out, 4 * out, out, None]
    for k in range(layers):
        w = (inp if k == 0 else hid) + hid
        sizes += [g * hid * w, 4 * g * hid, 4 * hid if cell == 1 else 0, 4 * g * hid, g * hid, g * hid]
    table_end = HEADER_SIZE + 8 * nsec
    if table_end > total:
        raise _err("header says %d bytes, too few for its section table (truncated file?)" % total)
    secs = []
    for k in range(nsec):
        off, size = _u32(blob, HEADER_SIZE + 8 * k), _u32(blob, HEADER_SIZE + 8 * k + 4)
        if (sizes[k] is not None and size != sizes[k]) or off % 4 or off < table_end or off + size > total:
            raise _err("section %d is misplaced or has the wrong size" % k)
        secs.append((off, size))
    head = {"cell": CELLS[cell], "layers": layers, "input_size": inp, "hidden_size": hid,
            "output_size": out, "hash": _u32(blob, 16), "kernel_version": KERNEL_VERSION,
            "cell_frac": [blob[32 + k] - (256 if blob[32 + k] > 127 else 0) for k in range(layers)]}
    return head, secs


def read_meta(blob) -> dict:
    """The blob's metadata (task, classes, mode, window, scales): a dict decoded from its JSON section."""
    import json

    off, size = read_sections(blob)[1][7]
    return json.loads(bytes(blob[off:off + size]))


def _ints(blob, sec: tuple, code: str) -> tuple:
    off, size = sec
    n = size // struct.calcsize(code)
    return struct.unpack_from("<%d%s" % (n, code), blob, off)


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


def _req(acc: int, mult: int, shift: int) -> int:
    # sat16((acc * M + 2^(s-1)) >> s): Python ints are exact; >> floors like C's arithmetic shift.
    v = (acc * mult + (1 << (shift - 1))) >> shift
    return -32768 if v < -32768 else (32767 if v > 32767 else v)


def _tanh(t, x: int) -> int:
    u = x + 32768
    i = u >> 8
    t0 = t[i]
    return t0 + (((t[i + 1] - t0) * (u & 255) + 128) >> 8)


def _sigmoid(t, x: int) -> int:
    return (_tanh(t, x >> 1) + 32768) >> 1


def _sat(v: int, lo: int, hi: int) -> int:
    return lo if v < lo else (hi if v > hi else v)


class _Layer:
    """Weight rows (a recurrent layer's gates, or the head) and, for a layer, its state."""

    def __init__(self, blob, secs: list, idx: tuple, nx: int, nh: int, frac: int, use_viper: bool):
        w, b, bhn, m, s, a = idx  # section numbers; bhn None: no GRU recurrent n bias; a None: no align
        if use_viper:  # viper reads the int8 weights in place from the blob
            self.w, self.woff = blob, secs[w][0]
        else:
            self.w, self.woff = array("b", _ints(blob, secs[w], "b")), 0
        self.bias = _ints(blob, secs[b], "i")
        self.bias_hn = _ints(blob, secs[bhn], "i") if bhn is not None else ()
        self.mult = _ints(blob, secs[m], "i")
        self.shift = _ints(blob, secs[s], "b")
        align = _ints(blob, secs[a], "b") if a is not None else (0,) * len(self.shift)
        # acc = acc_x * 2^max(a,0) + acc_h * 2^max(-a,0): the two parts of a row at one scale
        self.ax = [v if v > 0 else 0 for v in align]
        self.ah = [-v if v < 0 else 0 for v in align]
        self.nx, self.nh, self.frac = nx, nh, frac
        self.rows = len(self.bias)
        for v in self.bias + self.bias_hn:
            if v > BIAS_LIMIT or v < -BIAS_LIMIT:
                raise _err("a bias exceeds 2^30")
        for k in range(self.rows):
            if not 1 <= self.shift[k] <= 62 or self.mult[k] < 0 or self.ax[k] > 4 or self.ah[k] > 4:
                raise _err("a requantization shift, multiplier or align is out of range")
        self.xh = array("b", bytes(nx + nh))  # [x ; h]: the rows' input (a layer: its input and hidden state)
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
        self._dots = _viper_dots if viper and _viper_dots is not None else _plain_dots
        use_viper = self._dots is not _plain_dots
        self.table = _ints(blob, secs[0], "h")
        self.mean = _ints(blob, secs[1], "f")
        self.mul = _ints(blob, secs[2], "f")
        for v in self.mean + self.mul:
            if not v - v == 0.0:  # NaN or +-inf, the C test
                raise _err("the input normalisation constants contain NaN, infinity or a multiplier <= 0")
        for v in self.mul:
            if not v > 0.0:
                raise _err("the input normalisation constants contain NaN, infinity or a multiplier <= 0")
        self.head = _Layer(blob, secs, (3, 4, None, 5, 6, None), 0, H, 0, use_viper)
        gru = head["cell"] == "gru"
        sec = [8 + 6 * n for n in range(head["layers"])]
        self.layers = [_Layer(blob, secs, (sec[n], sec[n] + 1, sec[n] + 2 if gru else None, sec[n] + 3, sec[n] + 4,
                                           sec[n] + 5),
                              I if n == 0 else H, H, head["cell_frac"][n], use_viper)
                       for n in range(head["layers"])]
        for n, L in enumerate(self.layers):
            if head["cell"] == "lstm" and not 0 <= L.frac <= 14:
                raise _err("layer %d cell state fraction %d is outside 0..14" % (n, L.frac))
        self.out = array("h", bytes(2 * O))
        self._f32 = array("f", [0.0])
        self.steps = 0

    def info(self) -> dict:
        d = dict(self._info)
        del d["cell_frac"]
        return d

    def reset(self) -> None:
        for L in self.layers:
            for j in range(L.nh):
                L.xh[L.nx + j] = 0
                L.c[j] = 0
        self.steps = 0

    def _round32(self, v: float) -> float:
        self._f32[0] = v  # store as float32: rounds like C float arithmetic
        return self._f32[0]

    def quantize(self, x, q=None):
        """float sample [input_size] -> int8 array, exactly as tl_quantize_input."""
        q = q if q is not None else array("b", bytes(self.input_size))
        r = self._round32
        for k in range(self.input_size):
            xk = x[k]
            if xk - xk != 0.0:
                raise ValueError("input sample contains NaN or infinity")
            v = r(r(r(xk) - self.mean[k]) * self.mul[k])
            if v >= 127.0:
                q[k] = 127
            elif v <= -128.0:
                q[k] = -128
            else:
                q[k] = int(r(v + (0.5 if v >= 0.0 else -0.5)))
        return q

    def _lstm(self, L, t) -> list:
        H, F = L.nh, L.frac
        b, m, s = L.bias, L.mult, L.shift
        acc = [(x << sx) + (h << sh) + bb for x, h, sx, sh, bb in zip(L.accx, L.acch, L.ax, L.ah, b)]
        c, hn = L.c, [0] * H
        for j in range(H):
            i = _sigmoid(t, _req(acc[j], m[j], s[j]))
            r = H + j
            f = _sigmoid(t, _req(acc[r], m[r], s[r]))
            r += H
            g = _tanh(t, _req(acc[r], m[r], s[r]))
            r += H
            o = _sigmoid(t, _req(acc[r], m[r], s[r]))
            ig = (i * g + (1 << (14 - F))) >> (15 - F)
            cn = _sat((f * c[j] + ig + 16384) >> 15, -32768, 32767)
            c[j] = cn
            if F > 12:
                cq = (cn + (1 << (F - 13))) >> (F - 12)
            elif F < 12:
                cq = _sat(cn << (12 - F), -32768, 32767)
            else:
                cq = cn
            hn[j] = _sat((o * _tanh(t, cq) + (1 << 22)) >> 23, -128, 127)
        return hn

    def _gru(self, L, t) -> list:
        H, nx = L.nh, L.nx
        b, bhn, m, s = L.bias, L.bias_hn, L.mult, L.shift
        ax = [x << sx for x, sx in zip(L.accx, L.ax)]
        ah = [h << sh for h, sh in zip(L.acch, L.ah)]
        xh, hn = L.xh, [0] * H
        for j in range(H):
            r = _sigmoid(t, _req(ax[j] + ah[j] + b[j], m[j], s[j]))
            k = H + j
            z = _sigmoid(t, _req(ax[k] + ah[k] + b[k], m[k], s[k]))
            k += H
            n_x = _req(ax[k] + b[k], m[k], s[k])
            n_h = _req(ah[k] + bhn[j], m[k], s[k])
            n = _tanh(t, _sat(n_x + ((r * n_h + 16384) >> 15), -32768, 32767))
            h15 = xh[nx + j] << 8
            hn15 = n + ((z * (h15 - n) + 16384) >> 15)
            hn[j] = _sat((hn15 + 128) >> 8, -128, 127)
        return hn

    def step(self, x, out=None):
        """One sample (int8 values: array('b'), bytes-like of int8, list; or floats: array('f'))
        -> outputs in ``out`` (array('h') [output_size]) or in the model's own array, reused."""
        layers, t, dots = self.layers, self.table, self._dots
        xh = layers[0].xh
        if len(x) != self.input_size:
            raise ValueError("sample has %d values, the model takes %d" % (len(x), self.input_size))
        if isinstance(x[0], float):
            self.quantize(x, xh)
        else:
            for k in range(self.input_size):
                v = x[k]
                xh[k] = v - 256 if v > 127 else v
        lstm = self.cell == "lstm"
        for n, L in enumerate(layers):
            dots(L.w, L.woff, L.xh, L.accx, L.acch, L.rows, L.nx, L.nh)
            hn = self._lstm(L, t) if lstm else self._gru(L, t)
            nxt = layers[n + 1].xh if n + 1 < len(layers) else None
            for j in range(L.nh):
                L.xh[L.nx + j] = hn[j]
                if nxt is not None:
                    nxt[j] = hn[j]
        hd = self.head
        last = layers[-1]
        for j in range(self.hidden_size):  # head input: the last layer's new h
            hd.xh[j] = last.xh[last.nx + j]
        dots(hd.w, hd.woff, hd.xh, hd.accx, hd.acch, hd.rows, 0, hd.nh)
        y = out if out is not None else self.out
        for o in range(self.output_size):
            y[o] = _req(hd.acch[o] + hd.bias[o], hd.mult[o], hd.shift[o])
        self.steps += 1
        return y

    def run(self, xs, out=None):
        """int8 samples [T * input_size] (flat) -> array('h') [T * output_size], continuing the state."""
        I, O = self.input_size, self.output_size
        T = len(xs) // I
        ys = out if out is not None else array("h", bytes(2 * O * T))
        y = self.out
        for s in range(T):
            self.step(xs[s * I:(s + 1) * I])
            for o in range(O):
                ys[s * O + o] = y[o]
        return ys

    def state(self) -> tuple:
        """(h, c) as raw little-endian bytes: h int8 [layers * hidden], c int16 [layers * hidden]."""
        h = array("b", bytes(len(self.layers) * self.hidden_size))
        c = array("h", bytes(2 * len(h)))
        k = 0
        for L in self.layers:
            for j in range(L.nh):
                h[k] = L.xh[L.nx + j]
                c[k] = L.c[j]
                k += 1
        return bytes(h), bytes(c)
