/*
 * Helpers of the SMLAD paths (TL_SMLAD_PATH, tl_kernels.h) shared by tl_dot.c (int8 activations) and
 * tl_dot_s16.c (int16 activations). Internal: include only from csrc/ on DSP builds. One header rather than a
 * copy per file: builds that compile every kernel source as one unit (the MicroPython native module) would
 * otherwise see them twice.
 */
#ifndef TL_DSP_H
#define TL_DSP_H

#include <arm_acle.h>
#include <stdint.h>
#include <string.h>

/** Four bytes at any address: one LDR (unaligned access is allowed on ARMv7E-M). */
static inline uint32_t tl_ld32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
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

#endif /* TL_DSP_H */
