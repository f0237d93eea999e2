/*
 * The C runtime the Xtensa kernel-run ELFs need and no library provides here (tests/test_xtensa.py),
 * beside ports/common/libc_min.c (memcpy/memset/strlen):
 *  - with -DXT_RT_MULDI3: __muldi3, the int64 product of tl_requantize. Neither core has
 *    MUL32HIGH, so both compilers call it; no windowed libgcc exists for the clang build, and
 *    the Debian libgcc of xtensa-lx106-elf-gcc lacks it (and __addsf3/__subsf3/__mulsf3);
 *  - with -DXT_RT_SFCMP: __gtsf2/__lesf2, the two float comparisons of tl_model_check
 *    (0 < input_mul <= FLT_MAX) for the clang build without FPU (lx106's libgcc has them);
 *  - with -DXT_RT_DIVSI3: __divsi3, the int32 division of the mean readout (csrc/tl_pool.c) on lx106,
 *    which has no divide instruction; the ESP8266 has it in ROM (its SDK's linker scripts name it), but
 *    the Debian libgcc of xtensa-lx106-elf-gcc lacks it.
 * tl_input.c (float arithmetic) is left out of both runs: nothing here provides soft-float
 * add/sub/mul.
 */
#include <stdint.h>

#ifdef XT_RT_MULDI3
int64_t __muldi3(int64_t a, int64_t b);

/* a * b mod 2^64 from 32-bit products (MUL32's MULL keeps the low word): the low words' full
 * 64-bit product from 16-bit halves, plus the two cross products in the high word. */
int64_t __muldi3(int64_t a, int64_t b)
{
    const uint64_t ua = (uint64_t)a, ub = (uint64_t)b;
    const uint32_t a_lo = (uint32_t)ua, a_hi = (uint32_t)(ua >> 32);
    const uint32_t b_lo = (uint32_t)ub, b_hi = (uint32_t)(ub >> 32);
    const uint32_t a0 = a_lo & 0xFFFFu, a1 = a_lo >> 16, b0 = b_lo & 0xFFFFu, b1 = b_lo >> 16;
    const uint32_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
    const uint32_t mid = (p00 >> 16) + (p01 & 0xFFFFu) + (p10 & 0xFFFFu); /* < 3 * 2^16 */
    const uint32_t lo = (mid << 16) | (p00 & 0xFFFFu);
    const uint32_t hi = p11 + (p01 >> 16) + (p10 >> 16) + (mid >> 16) + a_hi * b_lo + a_lo * b_hi;
    return (int64_t)(((uint64_t)hi << 32) | lo);
}
#endif

#ifdef XT_RT_DIVSI3
int32_t __divsi3(int32_t a, int32_t b);

/* a / b truncated toward zero, as C's `/` (b != 0), by restoring shift-subtract on the magnitudes. */
int32_t __divsi3(int32_t a, int32_t b)
{
    const uint32_t ua = a < 0 ? 0u - (uint32_t)a : (uint32_t)a;
    const uint32_t ub = b < 0 ? 0u - (uint32_t)b : (uint32_t)b;
    uint32_t q = 0, r = 0;
    for (int i = 31; i >= 0; --i) {
        r = (r << 1) | ((ua >> i) & 1u);
        if (r >= ub) {
            r -= ub;
            q |= 1u << i;
        }
    }
    return (a < 0) != (b < 0) ? (int32_t)(0u - q) : (int32_t)q;
}
#endif

#ifdef XT_RT_SFCMP
int __gtsf2(float a, float b);
int __lesf2(float a, float b);

/* IEEE single comparison on the bits: -1, 0, 1, or `unordered` if either is a NaN (+0 == -0). */
static int fcmp(float a, float b, int unordered)
{
    union {
        float f;
        uint32_t u;
    } pa = {a}, pb = {b}; /* C99 TC3 6.5.2.3: reading another member reinterprets the bytes */
    const uint32_t ua = pa.u, ub = pb.u;
    const uint32_t ma = ua & 0x7FFFFFFFu, mb = ub & 0x7FFFFFFFu;
    if (ma > 0x7F800000u || mb > 0x7F800000u) return unordered;
    const int32_t ka = (ua >> 31) ? -(int32_t)ma : (int32_t)ma; /* order-preserving keys */
    const int32_t kb = (ub >> 31) ? -(int32_t)mb : (int32_t)mb;
    return ka < kb ? -1 : ka > kb ? 1 : 0;
}

/* libgcc's contract: __gtsf2 > 0 iff a > b; __lesf2 <= 0 iff a <= b (NaN: false for both). */
int __gtsf2(float a, float b) { return fcmp(a, b, -1); }
int __lesf2(float a, float b) { return fcmp(a, b, 1); }
#endif
