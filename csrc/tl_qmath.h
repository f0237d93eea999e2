/*
 * TinyLSTM integer arithmetic: the one C copy of the rules in docs/integer-contract.md.
 * contract/qmath.py is the numpy twin; both must change together.
 *
 * Right shifts of negative values are arithmetic (implementation-defined in C99; every
 * compiler TinyLSTM supports — gcc, clang, xtensa-gcc — shifts arithmetically; checked below).
 */
#ifndef TL_QMATH_H
#define TL_QMATH_H

#include <stdint.h>
#include <string.h>

#include "tl_contract.h" /* TL_Q12, TL_Q15, TL_HIDDEN_FRAC */

typedef char tl_arithmetic_shift_check[((-1) >> 1) == -1 ? 1 : -1];

/* Branch hints and forced inlining where the compiler has them (no effect on results). */
#if defined(__GNUC__) || defined(__clang__)
#define TL_LIKELY(x) __builtin_expect(!!(x), 1)
#define TL_ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#define TL_LIKELY(x) (x)
#define TL_ALWAYS_INLINE static inline
#endif

static inline int32_t tl_sat8(int32_t x) { return x < -128 ? -128 : (x > 127 ? 127 : x); }

#if (defined(__ARM_FEATURE_SAT) || defined(__ARM_FEATURE_DSP)) && !defined(TL_NO_DSP)
#include <arm_acle.h>
#endif

#if defined(__ARM_FEATURE_SAT) && !defined(TL_NO_DSP)
/* SSAT #16 is exactly this clamp, in one instruction (gcc does not always find it). */
static inline int32_t tl_sat16(int32_t x) { return __ssat(x, 16); }
#else
static inline int32_t tl_sat16(int32_t x) { return x < -32768 ? -32768 : (x > 32767 ? 32767 : x); }
#endif

/** (x + 2^(n-1)) >> n for n >= 1: round half up. */
static inline int32_t tl_rshift_round(int32_t x, int n) { return (x + (1 << (n - 1))) >> n; }

/**
 * The one requantization rule, saturated to int16:
 * sat16((acc * M + 2^(s-1)) >> s) with an int64 product, s in 1..62.
 */
static inline int32_t tl_requantize(int32_t acc, int32_t mult, int shift)
{
    int64_t p = ((int64_t)acc * mult + ((int64_t)1 << (shift - 1))) >> shift;
    return p < -32768 ? -32768 : (p > 32767 ? 32767 : (int32_t)p);
}

/**
 * tl_requantize with a 32-bit route for shift > 32 (the usual case: Q3.12 outputs from int32
 * accumulators and multipliers in [2^30, 2^31)). Same result for every input, because with
 * p = acc * M = 2^32 * hi + lo (0 <= lo < 2^32, hi = the high word of the int64 product):
 *   floor((p + 2^(s-1)) / 2^s) = floor((hi + 2^(s-33) + lo / 2^32) / 2^(s-32))
 *                              = floor((hi + 2^(s-33)) / 2^(s-32))
 * and |hi| <= 2^30, 2^(s-33) <= 2^29, so the int32 sum cannot overflow (M >= 0, checked by
 * tl_model_check). With k = s - 32 >= 1 and floor(floor(y) / 2) = floor(y / 2) for integers:
 *   floor((hi + 2^(k-1)) / 2^k) = floor((floor(hi / 2^(k-1)) + 1) / 2) = ((hi >> (k-1)) + 1) >> 1
 * On Cortex-M this is SMULL, SUB, ASR, ADD, SSAT #16 (with ASR #1) instead of a 64-bit shift.
 */
TL_ALWAYS_INLINE int32_t tl_requantize_fast(int32_t acc, int32_t mult, int shift)
{
    const int k1 = shift - 33; /* k - 1; its sign is the test (SUBS sets the flags) */
    if (TL_LIKELY(k1 >= 0)) {
        int32_t hi = (int32_t)(((int64_t)acc * mult) >> 32);
        return tl_sat16(((hi >> k1) + 1) >> 1);
    }
    return tl_requantize(acc, mult, shift);
}

#ifdef TL_INPUT16
/**
 * The requantization rule on an int64 accumulator (int16-h models, and layer 0 of an int16-input one): exact while |acc * M| < 2^62. Gate rows:
 * |acc| < 2^35 and M < 2^TL_MULT16_BITS (tl_model_check); the head: |acc| <= 2^31 and M < 2^31.
 * An accumulator that fits in int32 (the usual case) takes tl_requantize_fast: the same rule, the same bits.
 */
static inline int32_t tl_requantize64(int64_t acc, int32_t mult, int shift)
{
    if (TL_LIKELY(acc == (int32_t)acc)) return tl_requantize_fast((int32_t)acc, mult, shift);
    int64_t p = (acc * mult + ((int64_t)1 << (shift - 1))) >> shift;
    return p < -32768 ? -32768 : (p > 32767 ? 32767 : (int32_t)p);
}

/** The aligned accumulator of an int16-h row: acc_x * 2^max(e,0) + acc_h * 2^max(-e,0) + bias, in int64. The
 * factors are at most 2^TL_MAX_SCALE_EXP and the products widening 32 x 32 -> 64 multiplies (SMULL, SMLAL on
 * Cortex-M). */
static inline int64_t tl_acc64(int32_t acc_x, int32_t acc_h, int scale_exp, int32_t bias)
{
    const int ex = scale_exp > 0 ? scale_exp : 0, eh = scale_exp < 0 ? -scale_exp : 0;
    return (int64_t)acc_x * (int32_t)(1 << ex) + (int64_t)acc_h * (int32_t)(1 << eh) + bias;
}
#endif

/** Bring the input-side and recurrent-side accumulators of a row to one scale, by the row's scale
 * exponent e (|e| <= TL_MAX_SCALE_EXP): acc = acc_x * 2^max(e,0) + acc_h * 2^max(-e,0). */
static inline int32_t tl_align_x(int32_t acc_x, int scale_exp)
{
    return scale_exp > 0 ? acc_x * (1 << scale_exp) : acc_x;
}
static inline int32_t tl_align_h(int32_t acc_h, int scale_exp)
{
    return scale_exp < 0 ? acc_h * (1 << -scale_exp) : acc_h;
}

/* The stored table (tl_model_t.act_table) holds entries TL_TABLE_LO..TL_TABLE_HI + 1 of the contract's
 * TL_TABLE_SIZE: outside them the contract's table is constant (docs/integer-contract.md, Activations). A Q3.12
 * input x sits at u = x + 32768 - TL_TABLE_BASE in it. */
#define TL_TABLE_BASE (TL_TABLE_LO << TL_TABLE_SEGMENT_BITS)
#define TL_TABLE_TOP ((TL_TABLE_HI - TL_TABLE_LO) << TL_TABLE_SEGMENT_BITS)
/* sigmoid reads the table at x / 2, in [-16384, 16383]: always inside the stored span, so it needs no clamp */
#if TL_TABLE_BASE > 16384 || TL_TABLE_BASE + TL_TABLE_TOP < 49151
#error "the stored tanh table must span every sigmoid input"
#endif

/* Linear interpolation at position u (0..TL_TABLE_TOP) of the stored table, before its final shift:
 * t0 + (((t1 - t0) * f + 128) >> 8) = (t0 * 256 + (t1 - t0) * f + 128) >> 8 (t0 is an integer, so it moves out
 * of the floor). tanh is this >> 8 with bias 128; sigmoid, (tanh(x / 2) + 32768) >> 1, is this >> 9 with bias
 * 128 + 32768 * 256, since floor(floor(a / 256) / 2) = floor(a / 512): two instructions fewer per sigmoid. */
#if defined(__ARM_FEATURE_DSP) && !defined(TL_NO_DSP) && !defined(__ARM_BIG_ENDIAN)
/* t0 * (256 - f) + t1 * f + bias: one LDR of the pair (t0, t1), one SMLAD with (256 - f, f). */
static inline int32_t tl_table_at(const int16_t *table, uint32_t u, int32_t bias)
{
    uint32_t idx = u >> 8, frac = u & 255u, pair;
    memcpy(&pair, table + idx, sizeof pair); /* table[idx] | table[idx + 1] << 16 (little-endian) */
    return __smlad((int16x2_t)pair, (int16x2_t)(frac * 65535u + 256u), bias);
}
#else
static inline int32_t tl_table_at(const int16_t *table, uint32_t u, int32_t bias)
{
    uint32_t idx = u >> 8, frac = u & 255u;
    int32_t t0 = table[idx];
    return t0 * 256 + (table[idx + 1] - t0) * (int32_t)frac + bias;
}
#endif

/** tanh: Q3.12 in, Q0.15 out, linear interpolation between table points (step 1/16); the position is clamped
 *  to the stored span, which changes no value (the contract's table is saturated beyond it). */
TL_ALWAYS_INLINE int32_t tl_tanh_q15(const int16_t *table, int32_t x)
{
    uint32_t u = (uint32_t)(x + 32768 - TL_TABLE_BASE);
    if (!TL_LIKELY(u <= TL_TABLE_TOP)) u = x < 0 ? 0 : TL_TABLE_TOP; /* one compare on the common path */
    return tl_table_at(table, u, 128) >> 8;
}

/** sigmoid(x) = (1 + tanh(x/2)) / 2: Q3.12 in, Q0.15 out in [0, 32767]. The two wrappers are forced inline and
 *  tl_table_at is left to the compiler (-Os keeps one copy): a call per activation, as with one table function. */
TL_ALWAYS_INLINE int32_t tl_sigmoid_q15(const int16_t *table, int32_t x)
{
    return tl_table_at(table, (uint32_t)((x >> 1) + 32768 - TL_TABLE_BASE), 128 + 32768 * 256) >> 9;
}

/** Cell state with F fractional bits -> Q3.12 tanh input. */
static inline int32_t tl_cell_to_q12(int32_t c, int cell_frac)
{
    if (cell_frac > TL_Q12) return tl_rshift_round(c, cell_frac - TL_Q12);
    if (cell_frac < TL_Q12) return tl_sat16(c * (1 << (TL_Q12 - cell_frac)));
    return c;
}

#endif /* TL_QMATH_H */
