/*
 * Float sample -> model input (int8, or int16: tl_input_bits) with the generated normalisation constants.
 * Only this file uses float; build it with -ffp-contract=off so (x - mean) * mul is never fused.
 */
#include <float.h>

#include "tinylstm.h"

/* Checks the sample, the multipliers and that the model's input is `wide` (int16, tl_input_bits) or not:
 * TL_OK, TL_ERR_INPUT (NaN or +-inf) or TL_ERR_ARG. */
static tl_status_t check(const tl_model_t *m, const float *x, int wide)
{
    if (!m || !x || !m->input_mean || !m->input_mul) return TL_ERR_ARG;
    if ((tl_input_bits(m) == 16) != (unsigned)wide) return TL_ERR_ARG; /* the other input type's function */
    for (size_t k = 0; k < m->input_size; ++k) {
        if (!(x[k] - x[k] == 0.0f)) return TL_ERR_INPUT; /* NaN or +-inf */
        /* a positive finite multiplier and a finite mean keep v off NaN, whose conversion to int32 is undefined */
        if (!(m->input_mul[k] > 0.0f && m->input_mul[k] <= FLT_MAX && m->input_mean[k] - m->input_mean[k] == 0.0f))
            return TL_ERR_ARG;
    }
    return TL_OK;
}

/* Value k of the sample in input units, saturated to [-top - 1, top] and rounded half away from zero. */
static int32_t quantize(const tl_model_t *m, const float *x, size_t k, float top)
{
    float v = (x[k] - m->input_mean[k]) * m->input_mul[k];
    if (v >= top) return (int32_t)top;
    if (v <= -top - 1.0f) return (int32_t)(-top - 1.0f);
    return (int32_t)(v + (v >= 0.0f ? 0.5f : -0.5f));
}

tl_status_t tl_quantize_input(const tl_model_t *m, const float *x, int8_t *q)
{
    const tl_status_t st = q ? check(m, x, 0) : TL_ERR_ARG;
    if (st != TL_OK) return st;
    for (size_t k = 0; k < m->input_size; ++k) q[k] = (int8_t)quantize(m, x, k, 127.0f);
    return TL_OK;
}

tl_status_t tl_quantize_input_s16(const tl_model_t *m, const float *x, int16_t *q)
{
    const tl_status_t st = q ? check(m, x, 1) : TL_ERR_ARG;
    if (st != TL_OK) return st;
    for (size_t k = 0; k < m->input_size; ++k) q[k] = (int16_t)quantize(m, x, k, 32767.0f);
    return TL_OK;
}
