# TinyLSTM for MicroPython: the viper hot loop of tinylstm_mpy.py (kept apart because a port
# built without the native emitter rejects @micropython.viper at compile time; tinylstm_mpy
# then falls back to its plain-Python loop).
# ptr8 / ptr16 / ptr32 are viper's built-in pointer types.
# ruff: noqa: F821
import micropython


@micropython.viper
def dots(w: ptr8, woff: int, xh: ptr8, accx: ptr32, acch: ptr32, rows: int, nx: int, nh: int):
    # For each of `rows` int8 weight rows at w[woff:], width nx + nh: accx[r] = row[:nx] . xh[:nx]
    # and acch[r] = row[nx:] . xh[nx:]. ptr8 loads are zero-extended, so (v ^ 0x80) - 0x80
    # sign-extends; sums stay below 2^25, inside every port's native word.
    width = nx + nh
    p = woff
    for r in range(rows):
        s = 0
        for k in range(nx):
            s += ((w[p + k] ^ 0x80) - 0x80) * ((xh[k] ^ 0x80) - 0x80)
        accx[r] = s
        s = 0
        for k in range(nx, width):
            s += ((w[p + k] ^ 0x80) - 0x80) * ((xh[k] ^ 0x80) - 0x80)
        acch[r] = s
        p += width


@micropython.viper
def dots16(w: ptr8, woff: int, xh: ptr16, accx: ptr32, acch: ptr32, rows: int, nx: int, nh: int):
    # The same over int16 inputs (the [x ; h] of an int16-h model, array('h'): int16x8, its model input
    # is int16 too): int8 weights times int16 words. ptr16 loads are zero-extended too, so
    # (v ^ 0x8000) - 0x8000 sign-extends. Every part is at most 128 * 32768 * 256 = 2^30 in magnitude
    # (h is at most MAX_HIDDEN wide, layer 0's int16 input at most MAX_INPUT16: the reader refuses more,
    # as tl_model_check does), inside a 32-bit word.
    width = nx + nh
    p = woff
    for r in range(rows):
        s = 0
        for k in range(nx):
            s += ((w[p + k] ^ 0x80) - 0x80) * ((xh[k] ^ 0x8000) - 0x8000)
        accx[r] = s
        s = 0
        for k in range(nx, width):
            s += ((w[p + k] ^ 0x80) - 0x80) * ((xh[k] ^ 0x8000) - 0x8000)
        acch[r] = s
        p += width
