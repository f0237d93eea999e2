/* Dense head, applied to the last layer's hidden state at every step. */
#include "tl_kernels.h"
#include "tl_qmath.h"

void tl_dense_step(const tl_model_t *m, const int8_t *h, int16_t *y)
{
    const size_t H = m->hidden_size;
    for (size_t o = 0; o < m->output_size; ++o) {
        int32_t acc = tl_dot_s8(m->head_weights + o * H, h, H) + m->head_bias[o];
        y[o] = (int16_t)tl_requantize(acc, m->head_mult[o], m->head_shift[o]);
    }
}
