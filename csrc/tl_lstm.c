/* LSTM layer step (PyTorch gate order i, f, g, o). Formulas: docs/integer-contract.md. */
#include "tl_kernels.h"
#include "tl_qmath.h"

/* Gate pre-activation of row `r`: requantized [x ; h] dot product plus bias, Q3.12. */
static int32_t gate(const tl_layer_t *L, size_t r, const int8_t *x, const int8_t *h)
{
    const int8_t *w = L->weights + r * (size_t)(L->input_size + L->hidden_size);
    int32_t acc = tl_align_x(tl_dot_s8(w, x, L->input_size), L->align[r]) +
                  tl_align_h(tl_dot_s8(w + L->input_size, h, L->hidden_size), L->align[r]) + L->bias[r];
    return tl_requantize(acc, L->mult[r], L->shift[r]);
}

void tl_lstm_layer_step(const tl_layer_t *L, const int16_t *table, const int8_t *x,
                        const int8_t *h, int8_t *h_next, int16_t *c)
{
    const size_t H = L->hidden_size;
    const int F = L->cell_frac;
    for (size_t j = 0; j < H; ++j) {
        int32_t i = tl_sigmoid_q15(table, gate(L, j, x, h));
        int32_t f = tl_sigmoid_q15(table, gate(L, H + j, x, h));
        int32_t g = tl_tanh_q15(table, gate(L, 2 * H + j, x, h));
        int32_t o = tl_sigmoid_q15(table, gate(L, 3 * H + j, x, h));
        int32_t ig = tl_rshift_round(i * g, TL_Q15 - F);
        int32_t cn = tl_sat16(tl_rshift_round(f * c[j] + ig, TL_Q15));
        int32_t t = tl_tanh_q15(table, tl_cell_to_q12(cn, F));
        c[j] = (int16_t)cn;
        h_next[j] = (int8_t)tl_sat8(tl_rshift_round(o * t, 2 * TL_Q15 - TL_HIDDEN_FRAC));
    }
}
