/*
 * LSTM layer step (PyTorch gate order i, f, g, o). Formulas: docs/integer-contract.md.
 *
 * The four gate rows of unit j (rows j, H+j, 2H+j, 3H+j: one stride of H*(I+H) bytes apart)
 * share their input, so their dot products run together (tl_dot4_s8): on Cortex-M4/M7
 * each activation word is loaded and unpacked once for the four rows.
 */
#include "tl_kernels.h"
#include "tl_qmath.h"

void tl_lstm_layer_step(const tl_layer_t *L, const int16_t *table, const int8_t *x,
                        const int8_t *h, int8_t *h_next, int16_t *c)
{
    const size_t H = L->hidden_size, I = L->input_size, W = I + H, stride = H * W;
    const int F = L->cell_frac;
    int32_t ax[4], ah[4], pre[4];
    for (size_t j = 0; j < H; ++j) {
        const int8_t *w = L->weights + j * W;
        tl_dot4_s8(w, stride, x, I, ax);
        tl_dot4_s8(w + I, stride, h, H, ah);
        for (size_t g = 0; g < 4; ++g) {
            const size_t r = g * H + j;
            const int a = L->align[r];
            pre[g] = tl_requantize_fast(tl_align_x(ax[g], a) + tl_align_h(ah[g], a) + L->bias[r], L->mult[r],
                                        L->shift[r]);
        }
        int32_t i = tl_sigmoid_q15(table, pre[0]);
        int32_t f = tl_sigmoid_q15(table, pre[1]);
        int32_t g = tl_tanh_q15(table, pre[2]);
        int32_t o = tl_sigmoid_q15(table, pre[3]);
        int32_t ig = tl_rshift_round(i * g, TL_Q15 - F);
        int32_t cn = tl_sat16(tl_rshift_round(f * c[j] + ig, TL_Q15));
        int32_t t = tl_tanh_q15(table, tl_cell_to_q12(cn, F));
        c[j] = (int16_t)cn;
        h_next[j] = (int8_t)tl_sat8(tl_rshift_round(o * t, 2 * TL_Q15 - TL_HIDDEN_FRAC));
    }
}
