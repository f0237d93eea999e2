/*
 * int8 weights x int16 activations: the dot products of int16-h models and of int16 inputs (-DTL_INPUT16, which
 * -DTL_HIDDEN16 implies; docs/integer-contract.md,
 * "int16 hidden state"). Every sum has at most TL_MAX_HIDDEN (h) or TL_MAX_INPUT16 (the int16 model input) = 256
 * terms of |w| <= 128, |a| <= 32768, so it is exact in int32 (128 * 32768 * 256 = 2^30) whatever order it is added
 * in: the paths below give the same bits.
 *
 *  - Cortex-M4/M7 (TL_SMLAD_PATH, tl_kernels.h: __ARM_FEATURE_DSP, optimized builds, not -DTL_NO_DSP): SMLAD does
 *    two multiply-accumulates of int16 lanes per instruction. SXTB16 splits four int8 weights w0..w3 into the
 *    lanes (w0, w2) and (w1, w3), so the activations are paired the same way: per four activations a0..a3
 *    (two int16 words (a0, a1), (a2, a3), two unaligned-safe LDR: the arrays are 2-byte aligned only, which
 *    Cortex-M4/M7 allow for LDR but not for LDRD/LDM), PKHBT builds (a0, a2) and PKHTB (a1, a3), once for all
 *    the rows of the pass. Each row then costs, per four activations, LDR (four weights at any byte offset,
 *    the row-major [G*H][I+H] layout of the model data) + 2 SXTB16 + 2 SMLAD.
 *    Four rows (tl_dot4_s8s16: LSTM gates, the head), per 16 MACs: 2 LDR + 2 PKH + 4 x 5 = 24 instructions
 *    (int8 activations, tl_dot.c: 23), inline asm like tl_dot4_s8 (13 of Thumb-2's 14 registers), two groups
 *    per loop pass (2 loop instructions per 32 MACs). Three rows (tl_dot3_s8s16: GRU) and single rows (the
 *    head's last 1..2 rows) in C with ACLE intrinsics: 4 + 3 x 5 = 19 instructions per 12 MACs, 9 per 4.
 *    Tails of 1..3 activations are done one by one.
 *    tl_ld32/tl_even/tl_odd come from tl_dsp.h, shared with tl_dot.c.
 *  - Portable C99 everywhere else: one loop over the activations for all rows (host compilers vectorise it).
 */
#include <string.h>

#include "tl_kernels.h"

#ifdef TL_INPUT16

#if TL_MAX_HIDDEN > 256 || TL_MAX_INPUT16 > 256
#error "the int8 x int16 sums are exact in int32 for at most 256 terms (128 * 32768 * 256 = 2^30)"
#endif

#ifdef TL_SMLAD_PATH
#include "tl_dsp.h" /* tl_ld32, tl_even, tl_odd: shared with tl_dot.c */

/* (a0, a2) and (a1, a3) from the activation words a01 = (a0, a1), a23 = (a2, a3) (low lane first). ACLE has no
 * PKH intrinsic and gcc 12 does not fold the mask-and-shift expressions into one: inline asm. */
static inline int16x2_t tl_pk_even(uint32_t a01, uint32_t a23)
{
    int16x2_t r;
    __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(a01), "r"(a23));
    return r;
}
static inline int16x2_t tl_pk_odd(uint32_t a01, uint32_t a23)
{
    int16x2_t r;
    __asm__("pkhtb %0, %1, %2, asr #16" : "=r"(r) : "r"(a23), "r"(a01));
    return r;
}

/* ae, ao: the paired activations a[0..3]; a advances by 4 (two LDR, two PKH). */
#define TL_PAIR_A16()                                        \
    const uint32_t a01_ = tl_ld32(a), a23_ = tl_ld32(a + 2); \
    a += 4;                                                  \
    const int16x2_t ae = tl_pk_even(a01_, a23_), ao = tl_pk_odd(a01_, a23_)

/* acc + the four weights at p times the paired activations (LDR, 2 SXTB16, 2 SMLAD). */
static inline int32_t tl_mac4(int32_t acc, const int8_t *p, int16x2_t ae, int16x2_t ao)
{
    const uint32_t w = tl_ld32(p);
    return __smlad(tl_odd(w), ao, __smlad(tl_even(w), ae, acc));
}

/* Four rows, four activations: 2 LDR + 2 PKH + 4 x (LDR, 2 SXTB16, 2 SMLAD) = 24 instructions for 16 MACs.
 * Registers as in tl_dot.c: a, w0, w2 = w0 + 2*stride, stride, 4 sums, 2 paired activations, 2 temporaries
 * (and the loop count), so rows 1 and 3 use [w0, stride] and [w2, stride]. */
#define TL_DOT4_S16_BODY                     \
    "ldr     %[u], [%[a], #4]\n\t"           \
    "ldr     %[t], [%[a]], #8\n\t"           \
    "pkhbt   %[ae], %[t], %[u], lsl #16\n\t" \
    "pkhtb   %[ao], %[u], %[t], asr #16\n\t" \
    "ldr     %[t], [%[w0], %[st]]\n\t"       \
    "sxtb16  %[u], %[t]\n\t"                 \
    "sxtb16  %[t], %[t], ror #8\n\t"         \
    "smlad   %[s1], %[u], %[ae], %[s1]\n\t"  \
    "smlad   %[s1], %[t], %[ao], %[s1]\n\t"  \
    "ldr     %[t], [%[w2], %[st]]\n\t"       \
    "sxtb16  %[u], %[t]\n\t"                 \
    "sxtb16  %[t], %[t], ror #8\n\t"         \
    "smlad   %[s3], %[u], %[ae], %[s3]\n\t"  \
    "smlad   %[s3], %[t], %[ao], %[s3]\n\t"  \
    "ldr     %[t], [%[w2]], #4\n\t"          \
    "sxtb16  %[u], %[t]\n\t"                 \
    "sxtb16  %[t], %[t], ror #8\n\t"         \
    "smlad   %[s2], %[u], %[ae], %[s2]\n\t"  \
    "smlad   %[s2], %[t], %[ao], %[s2]\n\t"  \
    "ldr     %[t], [%[w0]], #4\n\t"          \
    "sxtb16  %[u], %[t]\n\t"                 \
    "sxtb16  %[t], %[t], ror #8\n\t"         \
    "smlad   %[s0], %[u], %[ae], %[s0]\n\t"  \
    "smlad   %[s0], %[t], %[ao], %[s0]\n\t"

void tl_dot4_s8s16(const int8_t *w, size_t stride, const int16_t *a, size_t n, int32_t *acc)
{
    const int8_t *w0 = w, *w2 = w + 2 * stride;
    int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t pairs = n >> 3;
    if (pairs) {
        uint32_t t, u, ae, ao;
        __asm__("1:\n\t" TL_DOT4_S16_BODY TL_DOT4_S16_BODY "subs    %[k], %[k], #1\n\t"
                "bne     1b\n\t"
                : [a] "+r"(a), [w0] "+r"(w0), [w2] "+r"(w2), [k] "+r"(pairs), [s0] "+r"(s0), [s1] "+r"(s1),
                  [s2] "+r"(s2), [s3] "+r"(s3), [t] "=&r"(t), [u] "=&r"(u), [ae] "=&r"(ae), [ao] "=&r"(ao)
                : [st] "r"(stride)
                : "cc", "memory");
    }
    if (n & 4) {
        uint32_t t, u, ae, ao;
        __asm__(TL_DOT4_S16_BODY
                : [a] "+r"(a), [w0] "+r"(w0), [w2] "+r"(w2), [s0] "+r"(s0), [s1] "+r"(s1), [s2] "+r"(s2), [s3] "+r"(s3),
                  [t] "=&r"(t), [u] "=&r"(u), [ae] "=&r"(ae), [ao] "=&r"(ao)
                : [st] "r"(stride)
                : "memory");
    }
    const int8_t *w1 = w0 + stride, *w3 = w2 + stride;
    for (size_t k = 0; k < (n & 3); ++k) {
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
    const int16_t *const end = a + (n & ~(size_t)3);
    while (a != end) {
        TL_PAIR_A16();
        s0 = tl_mac4(s0, w0, ae, ao);
        s1 = tl_mac4(s1, w1, ae, ao);
        s2 = tl_mac4(s2, w2, ae, ao);
        w0 += 4;
        w1 += 4;
        w2 += 4;
    }
    for (size_t k = 0; k < (n & 3); ++k) {
        const int32_t v = a[k];
        s0 += w0[k] * v;
        s1 += w1[k] * v;
        s2 += w2[k] * v;
    }
    acc[0] = s0;
    acc[1] = s1;
    acc[2] = s2;
}

/* One row: 9 instructions per four activations, two sums so that consecutive SMLADs do not wait on each other. */
static int32_t dot1_s16(const int8_t *w, const int16_t *a, size_t n)
{
    int32_t s0 = 0, s1 = 0;
    const int16_t *const end = a + (n & ~(size_t)3);
    while (a != end) {
        TL_PAIR_A16();
        const uint32_t v = tl_ld32(w);
        w += 4;
        s0 = __smlad(tl_even(v), ae, s0);
        s1 = __smlad(tl_odd(v), ao, s1);
    }
    for (size_t k = 0; k < (n & 3); ++k) s0 += w[k] * (int32_t)a[k];
    return s0 + s1;
}

#else /* portable C */

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

static int32_t dot1_s16(const int8_t *w, const int16_t *a, size_t n)
{
    int32_t s = 0;
    for (size_t k = 0; k < n; ++k) s += (int32_t)w[k] * a[k];
    return s;
}

#endif /* TL_SMLAD_PATH */

/* Rows in groups of four (the head), then three, then one by one: the same on both paths. */
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
        for (size_t r = 0; r < rows; ++r) acc[r] = dot1_s16(w + r * stride, a, n);
    }
}

#endif /* TL_INPUT16 */
