/*
 * Float sample -> int8 model input with the generated normalisation constants. Only this
 * file uses float; build it with -ffp-contract=off so (x - mean) * mul is never fused.
 */
#include "tinylstm.h"

tl_status_t tl_quantize_input(const tl_model_t *m, const float *x, int8_t *q)
{
    if (!m || !x || !q || !m->input_mean || !m->input_mul) return TL_ERR_ARG;
    for (size_t k = 0; k < m->input_size; ++k) {
        if (!(x[k] - x[k] == 0.0f)) return TL_ERR_INPUT;                                /* NaN or +-inf */
        if (!(m->input_mul[k] > 0.0f && m->input_mul[k] <= 3.4e38f)) return TL_ERR_ARG; /* keeps v off NaN */
    }
    for (size_t k = 0; k < m->input_size; ++k) {
        float v = (x[k] - m->input_mean[k]) * m->input_mul[k];
        if (v >= 127.0f)
            q[k] = 127;
        else if (v <= -128.0f)
            q[k] = -128;
        else
            q[k] = (int8_t)(int32_t)(v + (v >= 0.0f ? 0.5f : -0.5f));
    }
    return TL_OK;
}
