# TinyLSTM for MicroPython: the viper hot loop of tinylstm_mpy.py (kept apart because a port
# built without the native emitter rejects @micropython.viper at compile time; tinylstm_mpy
# then falls back to its plain-Python loop).
# ptr8 / ptr32 are viper's built-in pointer types.
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
