/*
 * int8 x int8 dot products: the inner loops of every gate row and of the head.
 *
 * Two implementations give the same bits (integer sums are exact, and every sum stays inside
 * the int32 bounds of docs/integer-contract.md, whatever order it is added in):
 *
 *  - Cortex-M4/M7 (and any core with __ARM_FEATURE_DSP), unless built with -DTL_NO_DSP:
 *    SXTB16 splits four int8 values into two pairs of int16 lanes, SMLAD does two
 *    multiply-accumulates per instruction. Up to four rows that share the activation vector
 *    (the four LSTM gate rows of one unit, the three GRU rows, four head rows) run in one
 *    pass, so each activation word is loaded and unpacked once for all of them.
 *    Weights stay in the row-major [G*H][I+H] layout of the model data (rows start at any
 *    byte offset), read four at a time with unaligned-safe loads (memcpy -> LDR: Cortex-M4/M7
 *    allow unaligned LDR). Tails of 1..3 elements are done one by one.
 *  - Portable C99 everywhere else (host builds, RISC-V, Xtensa, Cortex-M0): plain loops that
 *    host compilers vectorise.
 */
#include <string.h>

#include "tl_kernels.h"

#if defined(__ARM_FEATURE_DSP) && !defined(TL_NO_DSP)
#include <arm_acle.h>

#define TL_DOT_DSP 1

static inline uint32_t tl_ld32(const int8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v); /* one LDR (unaligned access is allowed on ARMv7E-M) */
    return v;
}

/* Lanes (0, 2) and (1, 3) of four int8 values, sign-extended to int16 pairs. The odd lanes use
 * SXTB16's ROR #8 operand through inline asm: gcc 12 has no __ror and does not fold a rotate
 * into __sxtb16, which would cost one more instruction per word. */
static inline int16x2_t tl_even(uint32_t v) { return __sxtb16((int8x4_t)v); }
static inline int16x2_t tl_odd(uint32_t v)
{
    int16x2_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}

/* acc += four products of row pointer p (advanced by 4) with the unpacked activations ae/ao. */
#define TL_MAC4(acc, p)                                      \
    do {                                                     \
        uint32_t w_ = tl_ld32(p);                            \
        (p) += 4;                                            \
        (acc) = __smlad(tl_even(w_), ae, (acc));             \
        (acc) = __smlad(tl_odd(w_), ao, (acc));              \
    } while (0)

#define TL_UNPACK_A()                                        \
    uint32_t av_ = tl_ld32(a);                               \
    a += 4;                                                  \
    int16x2_t ae = tl_even(av_), ao = tl_odd(av_)

/* Four rows, four activations: 1 + 2 unpack + 4 x (LDR, 2 SXTB16, 2 SMLAD) = 23 instructions for
 * 16 MACs. Registers: a, w0, w2 = w0 + 2*stride, stride, 4 sums, 2 unpacked activations and
 * 2 temporaries (13 of Thumb-2's 14), so rows 1 and 3 use [w0, stride] and [w2, stride]. */
#define TL_DOT4_BODY                                         \
    "ldr     %[t], [%[a]], #4\n\t"                           \
    "sxtb16  %[ae], %[t]\n\t"                                \
    "sxtb16  %[ao], %[t], ror #8\n\t"                        \
    "ldr     %[t], [%[w0], %[st]]\n\t"                       \
    "sxtb16  %[u], %[t]\n\t"                                 \
    "sxtb16  %[t], %[t], ror #8\n\t"                         \
    "smlad   %[s1], %[u], %[ae], %[s1]\n\t"                  \
    "smlad   %[s1], %[t], %[ao], %[s1]\n\t"                  \
    "ldr     %[t], [%[w2], %[st]]\n\t"                       \
    "sxtb16  %[u], %[t]\n\t"                                 \
    "sxtb16  %[t], %[t], ror #8\n\t"                         \
    "smlad   %[s3], %[u], %[ae], %[s3]\n\t"                  \
    "smlad   %[s3], %[t], %[ao], %[s3]\n\t"                  \
    "ldr     %[t], [%[w2]], #4\n\t"                          \
    "sxtb16  %[u], %[t]\n\t"                                 \
    "sxtb16  %[t], %[t], ror #8\n\t"                         \
    "smlad   %[s2], %[u], %[ae], %[s2]\n\t"                  \
    "smlad   %[s2], %[t], %[ao], %[s2]\n\t"                  \
    "ldr     %[t], [%[w0]], #4\n\t"                          \
    "sxtb16  %[u], %[t]\n\t"                                 \
    "sxtb16  %[t], %[t], ror #8\n\t"                         \
    "smlad   %[s0], %[u], %[ae], %[s0]\n\t"                  \
    "smlad   %[s0], %[t], %[ao], %[s0]\n\t"

void tl_dot4_s8(const int8_t *w, size_t stride, const int8_t *a, size_t n, int32_t *acc)
{
    const int8_t *w0 = w, *w2 = w + 2 * stride;
    int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t pairs = n >> 3;
    if (pairs) {
        uint32_t t, u, ae, ao;
        __asm__("1:\n\t" TL_DOT4_BODY TL_DOT4_BODY
                "subs    %[k], %[k], #1\n\t"
                "bne     1b\n\t"
                : [a] "+r"(a), [w0] "+r"(w0), [w2] "+r"(w2), [k] "+r"(pairs), [s0] "+r"(s0), [s1] "+r"(s1),
                  [s2] "+r"(s2), [s3] "+r"(s3), [t] "=&r"(t), [u] "=&r"(u), [ae] "=&r"(ae), [ao] "=&r"(ao)
                : [st] "r"(stride)
                : "cc", "memory");
    }
    if (n & 4) {
        uint32_t t, u, ae, ao;
        __asm__(TL_DOT4_BODY
                : [a] "+r"(a), [w0] "+r"(w0), [w2] "+r"(w2), [s0] "+r"(s0), [s1] "+r"(s1), [s2] "+r"(s2),
                  [s3] "+r"(s3), [t] "=&r"(t), [u] "=&r"(u), [ae] "=&r"(ae), [ao] "=&r"(ao)
                : [st] "r"(stride)
                : "memory");
    }
    const int8_t *w1 = w0 + stride, *w3 = w2 + stride;
    for (size_t k = 0; k < (n & 3); ++k) {
        int32_t v = a[k];
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

void tl_dot3_s8(const int8_t *w, size_t stride, const int8_t *a, size_t n, int32_t *acc)
{
    const int8_t *w0 = w, *w1 = w + stride, *w2 = w + 2 * stride;
    int32_t s0 = 0, s1 = 0, s2 = 0;
    const int8_t *end = a + (n & ~(size_t)3);
    while (a != end) {
        TL_UNPACK_A();
        TL_MAC4(s0, w0);
        TL_MAC4(s1, w1);
        TL_MAC4(s2, w2);
    }
    for (size_t k = 0; k < (n & 3); ++k) {
        int32_t v = a[k];
        s0 += w0[k] * v;
        s1 += w1[k] * v;
        s2 += w2[k] * v;
    }
    acc[0] = s0;
    acc[1] = s1;
    acc[2] = s2;
}

static int32_t dot1(const int8_t *w, const int8_t *a, size_t n)
{
    int32_t s0 = 0, s1 = 0;
    const int8_t *end = a + (n & ~(size_t)7);
    while (a != end) { /* 8 per pass, two accumulators: fewer loop instructions per MAC */
        {
            TL_UNPACK_A();
            TL_MAC4(s0, w);
        }
        {
            TL_UNPACK_A();
            TL_MAC4(s1, w);
        }
    }
    if (n & 4) {
        TL_UNPACK_A();
        TL_MAC4(s0, w);
    }
    for (size_t k = 0; k < (n & 3); ++k) s1 += w[k] * a[k];
    return s0 + s1;
}

int32_t tl_dot_s8(const int8_t *w, const int8_t *a, size_t n) { return dot1(w, a, n); }

void tl_dot_rows_s8(const int8_t *w, size_t stride, size_t rows, const int8_t *a, size_t n, int32_t *acc)
{
    while (rows >= 4) {
        tl_dot4_s8(w, stride, a, n, acc);
        w += 4 * stride;
        acc += 4;
        rows -= 4;
    }
    if (rows == 3) {
        tl_dot3_s8(w, stride, a, n, acc);
    } else {
        for (size_t r = 0; r < rows; ++r) acc[r] = dot1(w + r * stride, a, n);
    }
}

#else /* portable C */

int32_t tl_dot_s8(const int8_t *w, const int8_t *a, size_t n)
{
    int32_t acc = 0;
    for (size_t k = 0; k < n; ++k) acc += (int32_t)w[k] * a[k];
    return acc;
}

void tl_dot_rows_s8(const int8_t *w, size_t stride, size_t rows, const int8_t *a, size_t n, int32_t *acc)
{
    for (size_t r = 0; r < rows; ++r) acc[r] = tl_dot_s8(w + r * stride, a, n);
}

/* One loop over the activations for all rows: host compilers vectorise the reductions
 * together (gcc -O3: one activation load and sign extension per 16 elements for 4 rows). */
void tl_dot4_s8(const int8_t *w, size_t stride, const int8_t *a, size_t n, int32_t *acc)
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

void tl_dot3_s8(const int8_t *w, size_t stride, const int8_t *a, size_t n, int32_t *acc)
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

#endif
