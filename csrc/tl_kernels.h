/*
 * Internal kernels of TinyLSTM, one per file (tl_dot.c, tl_lstm.c, tl_gru.c, tl_dense.c); tl_api.c drives them.
 * Not part of the public API: use tinylstm.h.
 */
#ifndef TL_KERNELS_H
#define TL_KERNELS_H

#include "tinylstm.h"

/** Dot product of `n` int8 weights with `n` int8 activations, in int32. */
int32_t tl_dot_s8(const int8_t *w, const int8_t *a, size_t n);

/**
 * `rows` dot products over the same activations: acc[r] = sum_{k<n} w[r*stride + k] * a[k].
 * Rows sharing their input run in one pass on Cortex-M4/M7 (see tl_dot.c).
 */
void tl_dot_rows_s8(const int8_t *w, size_t stride, size_t rows, const int8_t *a, size_t n, int32_t *acc);

/** tl_dot_rows_s8 with 4 (LSTM gate rows of one unit) and 3 (GRU) rows, without the dispatch. */
void tl_dot4_s8(const int8_t *w, size_t stride, const int8_t *a, size_t n, int32_t *acc);
void tl_dot3_s8(const int8_t *w, size_t stride, const int8_t *a, size_t n, int32_t *acc);

/**
 * One LSTM layer step. Reads x [I] and the old h [H]; writes the new hidden state to
 * h_next [H] and updates c [H] in place. h and h_next must not overlap.
 */
void tl_lstm_layer_step(const tl_layer_t *layer, const int16_t *table, const int8_t *x,
                        const int8_t *h, int8_t *h_next, int16_t *c);

/** One GRU layer step (PyTorch formulation). Same buffer rules as tl_lstm_layer_step. */
void tl_gru_layer_step(const tl_layer_t *layer, const int16_t *table, const int8_t *x,
                       const int8_t *h, int8_t *h_next);

/** Dense head: y[o] = sat16(requantize(W[o] . h + b[o])) for o < model->output_size. */
void tl_dense_step(const tl_model_t *model, const int8_t *h, int16_t *y);

#endif /* TL_KERNELS_H */
