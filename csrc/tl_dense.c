/* Dense head, applied to the readout (or a bidirectional model's [v_f ; v_b]) at every step (rows in groups of 4). */
#include "tl_kernels.h"
#include "tl_qmath.h"

void tl_dense_step(const tl_model_t *m, const int8_t *h, int16_t *y)
{
    const size_t H = tl_head_width(m), O = m->output_size;
    int32_t acc[4];
    for (size_t o0 = 0; o0 < O; o0 += 4) {
        const size_t rows = O - o0 < 4 ? O - o0 : 4;
        tl_dot_rows_s8(m->head_weights + o0 * H, H, rows, h, H, acc);
        for (size_t k = 0; k < rows; ++k) {
            const size_t o = o0 + k;
            y[o] = (int16_t)tl_requantize_fast(acc[k] + m->head_bias[o], m->head_mult[o], m->head_shift[o]);
        }
    }
}

#ifdef TL_HIDDEN16
void tl_dense_step16(const tl_model_t *m, const int16_t *h, int16_t *y)
{
    const size_t H = m->hidden_size, O = m->output_size;
    int32_t acc[4];
    for (size_t o0 = 0; o0 < O; o0 += 4) {
        const size_t rows = O - o0 < 4 ? O - o0 : 4;
        tl_dot_rows_s8s16(m->head_weights + o0 * H, H, rows, h, H, acc);
        for (size_t k = 0; k < rows; ++k) {
            const size_t o = o0 + k;
            /* |W . h| <= 128 * 32768 * 256 = 2^30 and |b| <= 2^30: the sum can reach 2^31, so it is taken in int64 */
            y[o] = (int16_t)tl_requantize64((int64_t)acc[k] + m->head_bias[o], m->head_mult[o], m->head_shift[o]);
        }
    }
}
#endif
