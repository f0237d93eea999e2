/*
 * int8 weights x int16 activations: the dot products of int16-h models (-DTL_HIDDEN16; docs/integer-contract.md,
 * "int16 hidden state"). Every sum has at most TL_MAX_HIDDEN terms of |w| <= 128, |a| <= 32768, so it is exact in
 * int32 (128 * 32768 * 256 = 2^30) whatever order it is added in: the paths below give the same bits.
 *
 *  - Portable C99: one loop over the activations for all rows (host compilers vectorise it).
 */
#include "tl_kernels.h"

#ifdef TL_HIDDEN16

void tl_dot4_s8s16(const int8_t *w, size_t stride, const int16_t *a, size_t n, int32_t *acc)
{
    const int8_t *w0 = w, *w1 = w + stride, *w2 = w + 2 * stride, *w3 = w + 3 * stride;
    int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t k = 0; k < n; ++k) {
        const int32_t v = a[k];
        s0 += w0[k] * v;
        s1 += w1[k] * v;
        s2 += w2[k] * v;
        s3 += w3[k] * v;
    }
    acc[0] = s0;
    acc[1] = s1;
    acc[2] = s2;
    acc[3] = s3;
}

void tl_dot3_s8s16(const int8_t *w, size_t stride, const int16_t *a, size_t n, int32_t *acc)
{
    const int8_t *w0 = w, *w1 = w + stride, *w2 = w + 2 * stride;
    int32_t s0 = 0, s1 = 0, s2 = 0;
    for (size_t k = 0; k < n; ++k) {
        const int32_t v = a[k];
        s0 += w0[k] * v;
        s1 += w1[k] * v;
        s2 += w2[k] * v;
    }
    acc[0] = s0;
    acc[1] = s1;
    acc[2] = s2;
}

void tl_dot_rows_s8s16(const int8_t *w, size_t stride, size_t rows, const int16_t *a, size_t n, int32_t *acc)
{
    while (rows >= 4) {
        tl_dot4_s8s16(w, stride, a, n, acc);
        w += 4 * stride;
        acc += 4;
        rows -= 4;
    }
    if (rows == 3) {
        tl_dot3_s8s16(w, stride, a, n, acc);
    } else {
        for (size_t r = 0; r < rows; ++r) {
            int32_t s = 0;
            for (size_t k = 0; k < n; ++k) s += (int32_t)w[r * stride + k] * a[k];
            acc[r] = s;
        }
    }
}

#endif /* TL_HIDDEN16 */
