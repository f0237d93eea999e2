/*
 * GRU layer step in PyTorch's formulation (gate order r, z, n):
 *   n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),  h' = n + z * (h - n).
 * Formulas: docs/integer-contract.md. int8 layout: the three rows of unit j (j, H+j, 2H+j)
 * share their input, so their dot products run together (tl_dot3_s8), as in tl_lstm.c.
 * w16 layout (weights16): one pointer walks the unit blocks; the x part accumulates
 * (r, z, n_x) from the biases (b_r, b_z, b_in), the h part (r, z, n_h) from (.., .., b_hn).
 */
#include "tl_kernels.h"
#include "tl_qmath.h"

/* Element-wise part of unit j: pr, pz = Q3.12 pre-activations of r and z, nx, nh = the n row's parts, h15 = the
 * old h in Q0.15; returns the new h in Q0.15, before it is stored. */
TL_ALWAYS_INLINE int32_t gru_h15(const int16_t *table, int32_t pr, int32_t pz, int32_t nx, int32_t nh, int32_t h15)
{
    int32_t r = tl_sigmoid_q15(table, pr);
    int32_t z = tl_sigmoid_q15(table, pz);
    int32_t n = tl_tanh_q15(table, tl_sat16(nx + tl_rshift_round(r * nh, TL_Q15)));
    return n + tl_rshift_round(z * (h15 - n), TL_Q15);
}

/* The same for an int8 Q0.7 h. */
TL_ALWAYS_INLINE int8_t gru_unit(const int16_t *table, int32_t pr, int32_t pz, int32_t nx, int32_t nh, int8_t hj)
{
    int32_t hn15 = gru_h15(table, pr, pz, nx, nh, (int32_t)hj * (1 << (TL_Q15 - TL_HIDDEN_FRAC)));
    return (int8_t)tl_sat8(tl_rshift_round(hn15, TL_Q15 - TL_HIDDEN_FRAC));
}

#ifdef TL_LAYOUT_W16
static void gru_step_w16(const tl_layer_t *L, const int16_t *table, const int8_t *x, const int8_t *h, int8_t *h_next)
{
    const size_t H = L->hidden_size;
    const int16_t *w = L->weights16;
    const int32_t *bias = L->bias, *mult = L->mult, *bias_hn = L->bias_hn;
    const int8_t *shift = L->shift;
    tl_w16_in_t in;
    tl_w16_in_init(&in, L, x, h);
    int32_t acc[4];
    for (size_t j = 0; j < H; ++j) {
        w = tl_unit3_w16(w, &in, bias, bias_hn, acc);
        const int32_t pr = tl_requantize_fast(acc[0], mult[0], shift[0]);
        const int32_t pz = tl_requantize_fast(acc[1], mult[H], shift[H]);
        const int32_t nx = tl_requantize_fast(acc[2], mult[2 * H], shift[2 * H]);
        const int32_t nh = tl_requantize_fast(acc[3], mult[2 * H], shift[2 * H]);
        h_next[j] = gru_unit(table, pr, pz, nx, nh, h[j]);
        ++bias;
        ++bias_hn;
        ++mult;
        ++shift;
    }
}
#endif

void tl_gru_layer_step(const tl_layer_t *L, const int16_t *table, const int8_t *x, const int8_t *h, int8_t *h_next,
                       int16_t *c)
{
    (void)c; /* a GRU has no cell state */
#ifdef TL_LAYOUT_W16
    if (L->weights16) {
        gru_step_w16(L, table, x, h, h_next);
        return;
    }
#endif
    const size_t H = L->hidden_size, I = L->input_size, W = I + H, stride = H * W;
    const int8_t *e = L->scale_exp;
    int32_t ax[3], ah[3];
    for (size_t j = 0; j < H; ++j) {
        const size_t rr = j, rz = H + j, rn = 2 * H + j;
        const int8_t *w = L->weights + j * W;
        tl_dot3_s8(w, stride, x, I, ax);
        tl_dot3_s8(w + I, stride, h, H, ah);
        int32_t pr = tl_requantize_fast(tl_align_x(ax[0], e[rr]) + tl_align_h(ah[0], e[rr]) + L->bias[rr], L->mult[rr],
                                        L->shift[rr]);
        int32_t pz = tl_requantize_fast(tl_align_x(ax[1], e[rz]) + tl_align_h(ah[1], e[rz]) + L->bias[rz], L->mult[rz],
                                        L->shift[rz]);
        int32_t nx = tl_requantize_fast(tl_align_x(ax[2], e[rn]) + L->bias[rn], L->mult[rn], L->shift[rn]);
        int32_t nh = tl_requantize_fast(tl_align_h(ah[2], e[rn]) + L->bias_hn[j], L->mult[rn], L->shift[rn]);
        h_next[j] = gru_unit(table, pr, pz, nx, nh, h[j]);
    }
}

#ifdef TL_INPUT16
/* The layer step whose rows sum in int64 (tl_acc64): an int16-h layer (h16 in, hn16 out) and the int16 input's
 * layer 0 of an int8-h model (h8 in, hn8 out); x is int16. Inlined into each caller with its constant NULLs, so
 * each gets its own loop. */
TL_ALWAYS_INLINE void gru_step64(const tl_layer_t *L, const int16_t *table, const int16_t *x, const int8_t *h8,
                                 const int16_t *h16, int8_t *hn8, int16_t *hn16)
{
    const size_t H = L->hidden_size, I = L->input_size, W = I + H, stride = H * W;
    const int8_t *e = L->scale_exp;
    int32_t ax[3], ah[3];
    for (size_t j = 0; j < H; ++j) {
        const size_t rr = j, rz = H + j, rn = 2 * H + j;
        const int8_t *w = L->weights + j * W;
        tl_dot3_s8s16(w, stride, x, I, ax);
        if (h16)
            tl_dot3_s8s16(w + I, stride, h16, H, ah);
        else
            tl_dot3_s8(w + I, stride, h8, H, ah);
        int32_t pr = tl_requantize64(tl_acc64(ax[0], ah[0], e[rr], L->bias[rr]), L->mult[rr], L->shift[rr]);
        int32_t pz = tl_requantize64(tl_acc64(ax[1], ah[1], e[rz], L->bias[rz]), L->mult[rz], L->shift[rz]);
        int32_t nx = tl_requantize64(tl_acc64(ax[2], 0, e[rn], L->bias[rn]), L->mult[rn], L->shift[rn]);
        int32_t nh = tl_requantize64(tl_acc64(0, ah[2], e[rn], L->bias_hn[j]), L->mult[rn], L->shift[rn]);
        if (hn16)
            hn16[j] = (int16_t)tl_sat16(gru_h15(table, pr, pz, nx, nh, h16[j]));
        else
            hn8[j] = gru_unit(table, pr, pz, nx, nh, h8[j]);
    }
}
#endif

#ifdef TL_HIDDEN16
/* int16-h layer step (tl_layer_step16_fn): int8 weights, int16 Q0.15 h, the int64 accumulator of tl_acc64. */
void tl_gru_layer_step16(const tl_layer_t *L, const int16_t *table, const int16_t *x, const int16_t *h, int16_t *h_next,
                         int16_t *c)
{
    (void)c; /* a GRU has no cell state */
    gru_step64(L, table, x, 0, h, 0, h_next);
}
#endif

#if defined(TL_INPUT16) && TL_WITH_H8
/* int16-input layer step (tl_layer_step_x16_fn): layer 0 of an int8-h model with an int16 input; the int64 row sums
 * of tl_acc64 over the int16 x and the int8 h, the int8 Q0.7 h' of the int8-h step. */
void tl_gru_layer_step_x16(const tl_layer_t *L, const int16_t *table, const int16_t *x, const int8_t *h, int8_t *h_next,
                           int16_t *c)
{
    (void)c; /* a GRU has no cell state */
    gru_step64(L, table, x, h, 0, h_next, 0);
}
#endif
