/*
 * GRU layer step in PyTorch's formulation (gate order r, z, n):
 *   n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),  h' = n + z * (h - n).
 * Formulas: docs/integer-contract.md.
 */
#include "tl_kernels.h"
#include "tl_qmath.h"

void tl_gru_layer_step(const tl_layer_t *L, const int16_t *table, const int8_t *x,
                       const int8_t *h, int8_t *h_next)
{
    const size_t H = L->hidden_size, I = L->input_size, W = I + H;
    for (size_t j = 0; j < H; ++j) {
        const size_t rr = j, rz = H + j, rn = 2 * H + j;
        const int8_t *wr = L->weights + rr * W, *wz = L->weights + rz * W, *wn = L->weights + rn * W;
        const int8_t *a = L->align;
        int32_t r = tl_sigmoid_q15(table, tl_requantize(tl_align_x(tl_dot_s8(wr, x, I), a[rr]) +
                                                        tl_align_h(tl_dot_s8(wr + I, h, H), a[rr]) + L->bias[rr],
                                                        L->mult[rr], L->shift[rr]));
        int32_t z = tl_sigmoid_q15(table, tl_requantize(tl_align_x(tl_dot_s8(wz, x, I), a[rz]) +
                                                        tl_align_h(tl_dot_s8(wz + I, h, H), a[rz]) + L->bias[rz],
                                                        L->mult[rz], L->shift[rz]));
        int32_t nx = tl_requantize(tl_align_x(tl_dot_s8(wn, x, I), a[rn]) + L->bias[rn], L->mult[rn], L->shift[rn]);
        int32_t nh = tl_requantize(tl_align_h(tl_dot_s8(wn + I, h, H), a[rn]) + L->bias_hn[j], L->mult[rn],
                                   L->shift[rn]);
        int32_t n = tl_tanh_q15(table, tl_sat16(nx + tl_rshift_round(r * nh, TL_Q15)));
        int32_t h15 = (int32_t)h[j] * (1 << (TL_Q15 - TL_HIDDEN_FRAC));
        int32_t hn15 = n + tl_rshift_round(z * (h15 - n), TL_Q15);
        h_next[j] = (int8_t)tl_sat8(tl_rshift_round(hn15, TL_Q15 - TL_HIDDEN_FRAC));
    }
}
