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
 *
 * The optional "w16" weight layout (tl_layer_t.weights16, chosen by codegen) stores the weights
 * already widened to int16 and interleaved per unit, so the DSP loop is, per four activations
 * and four gate rows: 2 LDM of four words for the weights, 8 SMLAD, and for the activations
 * LDR + 2 SXTB16 (x part: 13 instructions for 16 MACs) or, for the h part, one LDRD from a copy
 * of h widened once per layer step (11 instructions for 16 MACs); one pointer for all rows and
 * units, the biases as the accumulators' start values, no per-row alignment shifts. Compiled
 * only with -DTL_LAYOUT_W16 (firmware with int8 models does not carry its code).
 */
#include <string.h>

#include "tl_kernels.h"
#include "tl_qmath.h"

#ifdef TL_SMLAD_PATH
#include "tl_dsp.h" /* tl_ld32, tl_even, tl_odd */

#define TL_DOT_DSP 1

/* acc += four products of row pointer p (advanced by 4) with the unpacked activations ae/ao. */
#define TL_MAC4(acc, p)                          \
    do {                                         \
        uint32_t w_ = tl_ld32(p);                \
        (p) += 4;                                \
        (acc) = __smlad(tl_even(w_), ae, (acc)); \
        (acc) = __smlad(tl_odd(w_), ao, (acc));  \
    } while (0)

#define TL_UNPACK_A()          \
    uint32_t av_ = tl_ld32(a); \
    a += 4;                    \
    int16x2_t ae = tl_even(av_), ao = tl_odd(av_)

/* Four rows, four activations: 1 + 2 unpack + 4 x (LDR, 2 SXTB16, 2 SMLAD) = 23 instructions for
 * 16 MACs. Registers: a, w0, w2 = w0 + 2*stride, stride, 4 sums, 2 unpacked activations and
 * 2 temporaries (13 of Thumb-2's 14), so rows 1 and 3 use [w0, stride] and [w2, stride]. */
#define TL_DOT4_BODY                        \
    "ldr     %[t], [%[a]], #4\n\t"          \
    "sxtb16  %[ae], %[t]\n\t"               \
    "sxtb16  %[ao], %[t], ror #8\n\t"       \
    "ldr     %[t], [%[w0], %[st]]\n\t"      \
    "sxtb16  %[u], %[t]\n\t"                \
    "sxtb16  %[t], %[t], ror #8\n\t"        \
    "smlad   %[s1], %[u], %[ae], %[s1]\n\t" \
    "smlad   %[s1], %[t], %[ao], %[s1]\n\t" \
    "ldr     %[t], [%[w2], %[st]]\n\t"      \
    "sxtb16  %[u], %[t]\n\t"                \
    "sxtb16  %[t], %[t], ror #8\n\t"        \
    "smlad   %[s3], %[u], %[ae], %[s3]\n\t" \
    "smlad   %[s3], %[t], %[ao], %[s3]\n\t" \
    "ldr     %[t], [%[w2]], #4\n\t"         \
    "sxtb16  %[u], %[t]\n\t"                \
    "sxtb16  %[t], %[t], ror #8\n\t"        \
    "smlad   %[s2], %[u], %[ae], %[s2]\n\t" \
    "smlad   %[s2], %[t], %[ao], %[s2]\n\t" \
    "ldr     %[t], [%[w0]], #4\n\t"         \
    "sxtb16  %[u], %[t]\n\t"                \
    "sxtb16  %[t], %[t], ror #8\n\t"        \
    "smlad   %[s0], %[u], %[ae], %[s0]\n\t" \
    "smlad   %[s0], %[t], %[ao], %[s0]\n\t"

void tl_dot4_s8(const int8_t *w, size_t stride, const int8_t *a, size_t n, int32_t *acc)
{
    const int8_t *w0 = w, *w2 = w + 2 * stride;
    int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t pairs = n >> 3;
    if (pairs) {
        uint32_t t, u, ae, ao;
        __asm__("1:\n\t" TL_DOT4_BODY TL_DOT4_BODY "subs    %[k], %[k], #1\n\t"
                "bne     1b\n\t"
                : [a] "+r"(a), [w0] "+r"(w0), [w2] "+r"(w2), [k] "+r"(pairs), [s0] "+r"(s0), [s1] "+r"(s1),
                  [s2] "+r"(s2), [s3] "+r"(s3), [t] "=&r"(t), [u] "=&r"(u), [ae] "=&r"(ae), [ao] "=&r"(ao)
                : [st] "r"(stride)
                : "cc", "memory");
    }
    if (n & 4) {
        uint32_t t, u, ae, ao;
        __asm__(TL_DOT4_BODY
                : [a] "+r"(a), [w0] "+r"(w0), [w2] "+r"(w2), [s0] "+r"(s0), [s1] "+r"(s1), [s2] "+r"(s2), [s3] "+r"(s3),
                  [t] "=&r"(t), [u] "=&r"(u), [ae] "=&r"(ae), [ao] "=&r"(ao)
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

#ifdef TL_LAYOUT_W16
/* ---- w16 layout (tl_layer_t.weights16) ---- */

static inline uint32_t tl_ld32w(const int16_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v); /* a pair of int16 at any even address: one LDR */
    return v;
}

/* One group of four activations for four rows: 13 instructions, 16 MACs. The weights arrive
 * with LDM into r10, r11, r12, lr (fixed registers: LDM fills registers in number order). */
#define TL_W16_ACT                  \
    "ldr     %[ao], [%[a]], #4\n\t" \
    "sxtb16  %[ae], %[ao]\n\t"      \
    "sxtb16  %[ao], %[ao], ror #8\n\t"
#define TL_W16_ROWS2(x, y)                       \
    "ldmia   %[w]!, {r10, r11, r12, lr}\n\t"     \
    "smlad   %[" x "], r10, %[ae], %[" x "]\n\t" \
    "smlad   %[" x "], r11, %[ao], %[" x "]\n\t" \
    "smlad   %[" y "], r12, %[ae], %[" y "]\n\t" \
    "smlad   %[" y "], lr, %[ao], %[" y "]\n\t"
#define TL_W16_ROW1(x)                           \
    "ldmia   %[w]!, {r10, r11}\n\t"              \
    "smlad   %[" x "], r10, %[ae], %[" x "]\n\t" \
    "smlad   %[" x "], r11, %[ao], %[" x "]\n\t"
/* The same four activations already widened (tl_widen_s8): one LDRD. */
#define TL_W16_ACTW "ldrd    %[ae], %[ao], [%[a]], #8\n\t"
#define TL_W16_GROUP4 TL_W16_ACT TL_W16_ROWS2("s0", "s1") TL_W16_ROWS2("s2", "s3")
#define TL_W16_GROUP3 TL_W16_ACT TL_W16_ROWS2("s0", "s1") TL_W16_ROW1("s2")
#define TL_W16_GROUP4W TL_W16_ACTW TL_W16_ROWS2("s0", "s1") TL_W16_ROWS2("s2", "s3")
#define TL_W16_GROUP3W TL_W16_ACTW TL_W16_ROWS2("s0", "s1") TL_W16_ROW1("s2")
#define TL_W16_GROUP1 TL_W16_ACT TL_W16_ROW1("s0")
#define TL_W16_GROUP1W TL_W16_ACTW TL_W16_ROW1("s0")

void tl_widen_s8(const int8_t *a, size_t n, uint32_t *out)
{
    for (size_t q = 0; q < n / 4; ++q, a += 4) {
        const uint32_t v = tl_ld32(a);
        out[2 * q] = (uint32_t)tl_even(v);
        out[2 * q + 1] = (uint32_t)tl_odd(v);
    }
}
#define TL_W16_OUT \
    [a] "+r"(a), [w] "+r"(w), [s0] "+r"(s0), [s1] "+r"(s1), [s2] "+r"(s2), [s3] "+r"(s3), [ae] "=&r"(ae), [ao] "=&r"(ao)

/* All n/4 groups of a part: 4 per loop pass (2 loop instructions per 64 MACs), then 2, then 1. */
#define TL_W16_GROUPS(GROUP)                                                                           \
    do {                                                                                               \
        size_t k_ = n >> 4;                                                                            \
        uint32_t ae, ao;                                                                               \
        if (k_) {                                                                                      \
            __asm__ volatile("1:\n\t" GROUP GROUP GROUP GROUP "subs    %[k], %[k], #1\n\t"             \
                             "bne     1b\n\t"                                                          \
                             : TL_W16_OUT, [k] "+r"(k_)                                                \
                             :                                                                         \
                             : "r10", "r11", "r12", "lr", "cc", "memory");                             \
        }                                                                                              \
        if (n & 8) __asm__ volatile(GROUP GROUP : TL_W16_OUT : : "r10", "r11", "r12", "lr", "memory"); \
        if (n & 4) __asm__ volatile(GROUP : TL_W16_OUT : : "r10", "r11", "r12", "lr", "memory");       \
    } while (0)

/* Accumulate one part (n activations a) of a unit block into s0..s3 (rows 0..G-1; with G = 3 the
 * third row goes to s2 for the x part and to s3 for the h part, so GRU's n_x and n_h stay apart).
 * The n%4 tail columns: per gate a pair (SMLAD with the packed activations), then a single. */
#define TL_W16_PART(G, GROUP, S2)                                                                 \
    do {                                                                                          \
        const int8_t *const a0_ = a;                                                              \
        TL_W16_GROUPS(GROUP);                                                                     \
        const size_t t_ = n & 3;                                                                  \
        a = a0_ + (n - t_);                                                                       \
        if (t_ == 0) {                                                                            \
        } else if (t_ == 2) {                                                                     \
            const int16x2_t ap_ = (int16x2_t)((uint32_t)(uint16_t)a[0] | ((uint32_t)a[1] << 16)); \
            s0 = __smlad((int16x2_t)tl_ld32w(w), ap_, s0);                                        \
            if ((G) >= 2) s1 = __smlad((int16x2_t)tl_ld32w(w + 2), ap_, s1);                      \
            if ((G) >= 3) S2 = __smlad((int16x2_t)tl_ld32w(w + 4), ap_, S2);                      \
            if ((G) == 4) s3 = __smlad((int16x2_t)tl_ld32w(w + 6), ap_, s3);                      \
        } else if (t_ == 3) {                                                                     \
            const int16x2_t ap_ = (int16x2_t)((uint32_t)(uint16_t)a[0] | ((uint32_t)a[1] << 16)); \
            const int32_t v_ = a[2];                                                              \
            s0 = __smlad((int16x2_t)tl_ld32w(w), ap_, s0) + w[2] * v_;                            \
            if ((G) >= 2) s1 = __smlad((int16x2_t)tl_ld32w(w + 3), ap_, s1) + w[5] * v_;          \
            if ((G) >= 3) S2 = __smlad((int16x2_t)tl_ld32w(w + 6), ap_, S2) + w[8] * v_;          \
            if ((G) == 4) s3 = __smlad((int16x2_t)tl_ld32w(w + 9), ap_, s3) + w[11] * v_;         \
        } else if (t_ == 1) {                                                                     \
            const int32_t v_ = a[0];                                                              \
            s0 += w[0] * v_;                                                                      \
            if ((G) >= 2) s1 += w[1] * v_;                                                        \
            if ((G) >= 3) S2 += w[2] * v_;                                                        \
            if ((G) == 4) s3 += w[3] * v_;                                                        \
        }                                                                                         \
        w += (G) * t_ + (((G) * n) & 1); /* parts are padded to an even count (4-byte aligned) */ \
    } while (0)

const int16_t *tl_unit4_w16(const int16_t *w, const tl_w16_in_t *in, const int32_t *bias, int32_t *acc)
{
    const size_t H = in->H;
    int32_t s0 = bias[0], s1 = bias[H], s2 = bias[2 * H], s3 = bias[3 * H];
    const int8_t *a = in->x;
    size_t n = in->I;
    TL_W16_PART(4, TL_W16_GROUP4, s2);
    /* h part: groups from the widened copy (a walks words, re-based for the tail by the macro) */
    n = H;
    a = (const int8_t *)in->hw;
    {
        const int8_t *const hb_ = in->h;
        TL_W16_GROUPS(TL_W16_GROUP4W);
        a = hb_ + (n & ~(size_t)3);
        n &= 3; /* the tail only (the macro's groups are skipped: n < 4) */
        TL_W16_PART(4, TL_W16_GROUP4, s2);
    }
    acc[0] = s0;
    acc[1] = s1;
    acc[2] = s2;
    acc[3] = s3;
    return w;
}

const int16_t *tl_unit3_w16(const int16_t *w, const tl_w16_in_t *in, const int32_t *bias, const int32_t *bias_hn,
                            int32_t *acc)
{
    const size_t H = in->H;
    int32_t s0 = bias[0], s1 = bias[H], s2 = bias[2 * H], s3 = *bias_hn;
    const int8_t *a = in->x;
    size_t n = in->I;
    TL_W16_PART(3, TL_W16_GROUP3, s2);
    acc[2] = s2; /* n_x is final; the h part's n row accumulates into s2 from b_hn */
    s2 = s3;
    n = H;
    a = (const int8_t *)in->hw;
    {
        const int8_t *const hb_ = in->h;
        TL_W16_GROUPS(TL_W16_GROUP3W);
        a = hb_ + (n & ~(size_t)3);
        n &= 3; /* the tail; its parity is H's, so the macro also skips the part's padding */
        TL_W16_PART(3, TL_W16_GROUP3, s2);
    }
    acc[0] = s0;
    acc[1] = s1;
    acc[3] = s2;
    return w;
}

const int16_t *tl_unit1_w16(const int16_t *w, const tl_w16_in_t *in, const int32_t *bias, int32_t *acc)
{
    int32_t s0 = bias[0], s1 = 0, s2 = 0, s3 = 0; /* s1..s3: operands of the shared asm, unused by one row */
    const int8_t *a = in->x;
    size_t n = in->I;
    TL_W16_PART(1, TL_W16_GROUP1, s2);
    n = in->H;
    a = (const int8_t *)in->hw;
    {
        const int8_t *const hb_ = in->h;
        TL_W16_GROUPS(TL_W16_GROUP1W);
        a = hb_ + (n & ~(size_t)3);
        n &= 3; /* the tail only */
        TL_W16_PART(1, TL_W16_GROUP1, s2);
    }
    (void)s1;
    (void)s2;
    (void)s3;
    acc[0] = s0;
    return w;
}
#endif /* TL_LAYOUT_W16 */

#else /* portable C */

void tl_dot_rows_s8(const int8_t *w, size_t stride, size_t rows, const int8_t *a, size_t n, int32_t *acc)
{
    for (size_t r = 0; r < rows; ++r) {
        int32_t s = 0;
        for (size_t k = 0; k < n; ++k) s += (int32_t)w[r * stride + k] * a[k];
        acc[r] = s;
    }
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

#ifdef TL_LAYOUT_W16
/* w16 layout (tl_layer_t.weights16), same order as the DSP loop reads it. */
static const int16_t *part_s16(const int16_t *w, const int8_t *a, size_t n, size_t G, int32_t *const *acc)
{
    for (size_t q = 0; q + 4 <= n; q += 4) {
        const int32_t a0 = a[q], a1 = a[q + 1], a2 = a[q + 2], a3 = a[q + 3];
        for (size_t g = 0; g < G; ++g, w += 4) *acc[g] += w[0] * a0 + w[1] * a2 + w[2] * a1 + w[3] * a3;
    }
    const size_t t = n & 3, q = n - t;
    for (size_t g = 0; g < G; ++g, w += t)
        for (size_t k = 0; k < t; ++k) *acc[g] += w[k] * a[q + k];
    return w + ((G * n) & 1); /* parts are padded to an even number of values (4-byte aligned) */
}

const int16_t *tl_unit4_w16(const int16_t *w, const tl_w16_in_t *in, const int32_t *bias, int32_t *acc)
{
    const size_t H = in->H;
    int32_t *const s[4] = {&acc[0], &acc[1], &acc[2], &acc[3]};
    for (size_t g = 0; g < 4; ++g) acc[g] = bias[g * H];
    w = part_s16(w, in->x, in->I, 4, s);
    return part_s16(w, in->h, H, 4, s);
}

const int16_t *tl_unit3_w16(const int16_t *w, const tl_w16_in_t *in, const int32_t *bias, const int32_t *bias_hn,
                            int32_t *acc)
{
    const size_t H = in->H;
    int32_t *const sx[3] = {&acc[0], &acc[1], &acc[2]}, *const sh[3] = {&acc[0], &acc[1], &acc[3]};
    acc[0] = bias[0];
    acc[1] = bias[H];
    acc[2] = bias[2 * H];
    acc[3] = *bias_hn;
    w = part_s16(w, in->x, in->I, 3, sx);
    return part_s16(w, in->h, H, 3, sh);
}

const int16_t *tl_unit1_w16(const int16_t *w, const tl_w16_in_t *in, const int32_t *bias, int32_t *acc)
{
    int32_t *const s[1] = {&acc[0]};
    acc[0] = bias[0];
    w = part_s16(w, in->x, in->I, 1, s);
    return part_s16(w, in->h, in->H, 1, s);
}
#endif /* TL_LAYOUT_W16 */

#endif

#ifdef TL_LAYOUT_W16
void tl_w16_in_init(tl_w16_in_t *in, const tl_layer_t *L, const int8_t *x, const int8_t *h)
{
    in->x = x;
    in->h = h;
    in->I = L->input_size;
    in->H = L->hidden_size;
#ifdef TL_W16_WIDE_H
    tl_widen_s8(h, L->hidden_size, in->hw);
#endif
}
#endif
