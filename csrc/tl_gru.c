/*
 * GRU layer step in PyTorch's formulation (gate order r, z, n):
 *   n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),  h' = n + z * (h - n).
 * Formulas: docs/integer-contract.md. The three rows of unit j (j, H+j, 2H+j) share their
 * input, so their dot products run together (tl_dot3_s8), as in tl_lstm.c.
 */
#include "tl_kernels.h"
#include "tl_qmath.h"

void tl_gru_layer_step(const tl_layer_t *L, const int16_t *table, const int8_t *x,
                       const int8_t *h, int8_t *h_next)
{
    const size_t H = L->hidden_size, I = L->input_size, W = I + H, stride = H * W;
    const int8_t *a = L->align;
    int32_t ax[3], ah[3];
    for (size_t j = 0; j < H; ++j) {
        const size_t rr = j, rz = H + j, rn = 2 * H + j;
        const int8_t *w = L->weights + j * W;
        tl_dot3_s8(w, stride, x, I, ax);
        tl_dot3_s8(w + I, stride, h, H, ah);
        int32_t r = tl_sigmoid_q15(table, tl_requantize_fast(tl_align_x(ax[0], a[rr]) + tl_align_h(ah[0], a[rr]) +
                                                                 L->bias[rr], L->mult[rr], L->shift[rr]));
        int32_t z = tl_sigmoid_q15(table, tl_requantize_fast(tl_align_x(ax[1], a[rz]) + tl_align_h(ah[1], a[rz]) +
                                                                 L->bias[rz], L->mult[rz], L->shift[rz]));
        int32_t nx = tl_requantize_fast(tl_align_x(ax[2], a[rn]) + L->bias[rn], L->mult[rn], L->shift[rn]);
        int32_t nh = tl_requantize_fast(tl_align_h(ah[2], a[rn]) + L->bias_hn[j], L->mult[rn], L->shift[rn]);
        int32_t n = tl_tanh_q15(table, tl_sat16(nx + tl_rshift_round(r * nh, TL_Q15)));
        int32_t h15 = (int32_t)h[j] * (1 << (TL_Q15 - TL_HIDDEN_FRAC));
        int32_t hn15 = n + tl_rshift_round(z * (h15 - n), TL_Q15);
        h_next[j] = (int8_t)tl_sat8(tl_rshift_round(hn15, TL_Q15 - TL_HIDDEN_FRAC));
    }
}
