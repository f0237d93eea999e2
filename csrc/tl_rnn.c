/*
 * Elman RNN layer step in PyTorch's formulation (torch.nn.RNN, nonlinearity tanh; one row per unit, the gate
 * "n"):  h' = tanh(W_ih x + b_ih + W_hh h + b_hh). Formulas: docs/integer-contract.md.
 * int8 layout: the rows of units j..j+3 are consecutive (one row of I+H bytes apart), so four units' dot
 * products run together (tl_dot_rows_s8: on Cortex-M4/M7 each activation word is loaded and unpacked once
 * for the four rows). w16 layout (weights16): one pointer walks the unit blocks (tl_unit1_w16).
 */
#include "tl_kernels.h"
#include "tl_qmath.h"

#ifdef TL_LAYOUT_W16
static void rnn_step_w16(const tl_layer_t *L, const int16_t *table, const int8_t *x, const int8_t *h, int8_t *h_next)
{
    const size_t H = L->hidden_size;
    const int16_t *w = L->weights16;
    tl_w16_in_t in;
    tl_w16_in_init(&in, L, x, h);
    int32_t acc;
    for (size_t j = 0; j < H; ++j) {
        w = tl_unit1_w16(w, &in, L->bias + j, &acc);
        const int32_t n = tl_tanh_q15(table, tl_requantize_fast(acc, L->mult[j], L->shift[j]));
        h_next[j] = (int8_t)tl_sat8(tl_rshift_round(n, TL_Q15 - TL_HIDDEN_FRAC));
    }
}
#endif

void tl_rnn_layer_step(const tl_layer_t *L, const int16_t *table, const int8_t *x, const int8_t *h, int8_t *h_next,
                       int16_t *c)
{
    (void)c; /* an RNN has no cell state */
#ifdef TL_LAYOUT_W16
    if (L->weights16) {
        rnn_step_w16(L, table, x, h, h_next);
        return;
    }
#endif
    const size_t H = L->hidden_size, I = L->input_size, W = I + H;
    const int8_t *e = L->scale_exp;
    int32_t ax[4], ah[4];
    for (size_t j0 = 0; j0 < H; j0 += 4) {
        const size_t rows = H - j0 < 4 ? H - j0 : 4;
        const int8_t *w = L->weights + j0 * W;
        tl_dot_rows_s8(w, W, rows, x, I, ax);
        tl_dot_rows_s8(w + I, W, rows, h, H, ah);
        for (size_t k = 0; k < rows; ++k) {
            const size_t j = j0 + k;
            const int32_t pre = tl_requantize_fast(tl_align_x(ax[k], e[j]) + tl_align_h(ah[k], e[j]) + L->bias[j],
                                                   L->mult[j], L->shift[j]);
            h_next[j] = (int8_t)tl_sat8(tl_rshift_round(tl_tanh_q15(table, pre), TL_Q15 - TL_HIDDEN_FRAC));
        }
    }
}

#ifdef TL_INPUT16
/* The layer step whose rows sum in int64 (tl_acc64): an int16-h layer (h16 in, hn16 out) and the int16 input's
 * layer 0 of an int8-h model (h8 in, hn8 out); x is int16. Inlined into each caller with its constant NULLs, so
 * each gets its own loop. */
TL_ALWAYS_INLINE void rnn_step64(const tl_layer_t *L, const int16_t *table, const int16_t *x, const int8_t *h8,
                                 const int16_t *h16, int8_t *hn8, int16_t *hn16)
{
    const size_t H = L->hidden_size, I = L->input_size, W = I + H;
    const int8_t *e = L->scale_exp;
    int32_t ax[4], ah[4];
    for (size_t j0 = 0; j0 < H; j0 += 4) {
        const size_t rows = H - j0 < 4 ? H - j0 : 4;
        const int8_t *w = L->weights + j0 * W;
        tl_dot_rows_s8s16(w, W, rows, x, I, ax);
        if (h16)
            tl_dot_rows_s8s16(w + I, W, rows, h16, H, ah);
        else
            tl_dot_rows_s8(w + I, W, rows, h8, H, ah);
        for (size_t k = 0; k < rows; ++k) {
            const size_t j = j0 + k;
            const int32_t pre = tl_requantize64(tl_acc64(ax[k], ah[k], e[j], L->bias[j]), L->mult[j], L->shift[j]);
            const int32_t n = tl_tanh_q15(table, pre);
            if (hn16)
                hn16[j] = (int16_t)n;
            else
                hn8[j] = (int8_t)tl_sat8(tl_rshift_round(n, TL_Q15 - TL_HIDDEN_FRAC));
        }
    }
}
#endif

#ifdef TL_HIDDEN16
/* int16-h layer step (tl_layer_step16_fn): int8 weights, int16 Q0.15 h, the int64 accumulator of tl_acc64. */
void tl_rnn_layer_step16(const tl_layer_t *L, const int16_t *table, const int16_t *x, const int16_t *h, int16_t *h_next,
                         int16_t *c)
{
    (void)c; /* an RNN has no cell state */
    rnn_step64(L, table, x, 0, h, 0, h_next);
}
#endif

#if defined(TL_INPUT16) && TL_WITH_H8
/* int16-input layer step (tl_layer_step_x16_fn): layer 0 of an int8-h model with an int16 input; the int64 row sum
 * of tl_acc64 over the int16 x and the int8 h, the int8 Q0.7 h' of the int8-h step. */
void tl_rnn_layer_step_x16(const tl_layer_t *L, const int16_t *table, const int16_t *x, const int8_t *h, int8_t *h_next,
                           int16_t *c)
{
    (void)c; /* an RNN has no cell state */
    rnn_step64(L, table, x, h, 0, h_next, 0);
}
#endif
