/*
 * LSTM layer step (PyTorch gate order i, f, g, o). Formulas: docs/integer-contract.md.
 *
 * int8 layout: the four gate rows of unit j (rows j, H+j, 2H+j, 3H+j: one stride of H*(I+H)
 * bytes apart) share their input, so their dot products run together (tl_dot4_s8): on
 * Cortex-M4/M7 each activation word is loaded and unpacked once for the four rows.
 * w16 layout (weights16): one pointer walks the unit blocks; the bias is the accumulators'
 * start value and the alignment is folded into the weights, so acc is the whole sum.
 */
#include "tl_kernels.h"
#include "tl_qmath.h"

/* Element-wise part of unit j from its four Q3.12 pre-activations: updates *c, returns o * tanh(c') (Q0.30). */
TL_ALWAYS_INLINE int32_t lstm_cell(const int16_t *table, const int32_t *pre, int F, int16_t *c)
{
    int32_t i = tl_sigmoid_q15(table, pre[0]);
    int32_t f = tl_sigmoid_q15(table, pre[1]);
    int32_t g = tl_tanh_q15(table, pre[2]);
    int32_t o = tl_sigmoid_q15(table, pre[3]);
    int32_t ig = tl_rshift_round(i * g, TL_Q15 - F);
    int32_t cn = tl_sat16(tl_rshift_round(f * *c + ig, TL_Q15));
    int32_t t = tl_tanh_q15(table, tl_cell_to_q12(cn, F));
    *c = (int16_t)cn;
    return o * t;
}

/* The same, returning the int8 Q0.7 h'. */
TL_ALWAYS_INLINE int8_t lstm_unit(const int16_t *table, const int32_t *pre, int F, int16_t *c)
{
    return (int8_t)tl_sat8(tl_rshift_round(lstm_cell(table, pre, F, c), 2 * TL_Q15 - TL_HIDDEN_FRAC));
}

#ifdef TL_LAYOUT_W16
static void lstm_step_w16(const tl_layer_t *L, const int16_t *table, const int8_t *x, const int8_t *h, int8_t *h_next,
                          int16_t *c)
{
    const size_t H = L->hidden_size;
    const int F = L->cell_frac;
    const int16_t *w = L->weights16;
    const int32_t *bias = L->bias, *mult = L->mult;
    const int8_t *shift = L->shift;
    tl_w16_in_t in;
    tl_w16_in_init(&in, L, x, h);
    int32_t acc[4], pre[4];
    for (size_t j = 0; j < H; ++j) {
        w = tl_unit4_w16(w, &in, bias, acc);
        pre[0] = tl_requantize_fast(acc[0], mult[0], shift[0]);
        pre[1] = tl_requantize_fast(acc[1], mult[H], shift[H]);
        pre[2] = tl_requantize_fast(acc[2], mult[2 * H], shift[2 * H]);
        pre[3] = tl_requantize_fast(acc[3], mult[3 * H], shift[3 * H]);
        h_next[j] = lstm_unit(table, pre, F, &c[j]);
        ++bias;
        ++mult;
        ++shift;
    }
}
#endif

void tl_lstm_layer_step(const tl_layer_t *L, const int16_t *table, const int8_t *x, const int8_t *h, int8_t *h_next,
                        int16_t *c)
{
#ifdef TL_LAYOUT_W16
    if (L->weights16) {
        lstm_step_w16(L, table, x, h, h_next, c);
        return;
    }
#endif
    const size_t H = L->hidden_size, I = L->input_size, W = I + H, stride = H * W;
    const int F = L->cell_frac;
    int32_t ax[4], ah[4], pre[4];
    for (size_t j = 0; j < H; ++j) {
        const int8_t *w = L->weights + j * W;
        tl_dot4_s8(w, stride, x, I, ax);
        tl_dot4_s8(w + I, stride, h, H, ah);
        for (size_t g = 0; g < 4; ++g) {
            const size_t r = g * H + j;
            const int e = L->scale_exp[r];
            pre[g] =
                tl_requantize_fast(tl_align_x(ax[g], e) + tl_align_h(ah[g], e) + L->bias[r], L->mult[r], L->shift[r]);
        }
        h_next[j] = lstm_unit(table, pre, F, &c[j]);
    }
}

#ifdef TL_INPUT16
/* The layer step whose rows sum in int64 (tl_acc64): an int16-h layer (h16 in, hn16 out) and the int16 input's
 * layer 0 of an int8-h model (h8 in, hn8 out); x is int16. Inlined into each caller with its constant NULLs, so
 * each gets its own loop. */
TL_ALWAYS_INLINE void lstm_step64(const tl_layer_t *L, const int16_t *table, const int16_t *x, const int8_t *h8,
                                  const int16_t *h16, int8_t *hn8, int16_t *hn16, int16_t *c)
{
    const size_t H = L->hidden_size, I = L->input_size, W = I + H, stride = H * W;
    const int F = L->cell_frac;
    int32_t ax[4], ah[4], pre[4];
    for (size_t j = 0; j < H; ++j) {
        const int8_t *w = L->weights + j * W;
        tl_dot4_s8s16(w, stride, x, I, ax);
        if (h16)
            tl_dot4_s8s16(w + I, stride, h16, H, ah);
        else
            tl_dot4_s8(w + I, stride, h8, H, ah);
        for (size_t g = 0; g < 4; ++g) {
            const size_t r = g * H + j;
            pre[g] = tl_requantize64(tl_acc64(ax[g], ah[g], L->scale_exp[r], L->bias[r]), L->mult[r], L->shift[r]);
        }
        if (hn16)
            hn16[j] =
                (int16_t)tl_sat16(tl_rshift_round(lstm_cell(table, pre, F, &c[j]), 2 * TL_Q15 - TL_HIDDEN16_FRAC));
        else
            hn8[j] = lstm_unit(table, pre, F, &c[j]);
    }
}
#endif

#ifdef TL_HIDDEN16
/* int16-h layer step (tl_layer_step16_fn): int8 weights, int16 Q0.15 h, the int64 accumulator of tl_acc64. */
void tl_lstm_layer_step16(const tl_layer_t *L, const int16_t *table, const int16_t *x, const int16_t *h,
                          int16_t *h_next, int16_t *c)
{
    lstm_step64(L, table, x, 0, h, 0, h_next, c);
}
#endif

#if defined(TL_INPUT16) && TL_WITH_H8
/* int16-input layer step (tl_layer_step_x16_fn): layer 0 of an int8-h model with an int16 input; the int64 row sum
 * of tl_acc64 over the int16 x and the int8 h, the int8 Q0.7 h' of the int8-h step. */
void tl_lstm_layer_step_x16(const tl_layer_t *L, const int16_t *table, const int16_t *x, const int8_t *h,
                            int8_t *h_next, int16_t *c)
{
    lstm_step64(L, table, x, h, 0, h_next, 0, c);
}
#endif
