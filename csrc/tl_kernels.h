/*
 * Internal kernels of TinyLSTM, one per file (tl_dot.c, tl_lstm.c, tl_gru.c, tl_dense.c); tl_api.c drives them
 * through the cell table (tl_cells.c). Not part of the public API: use tinylstm.h.
 */
#ifndef TL_KERNELS_H
#define TL_KERNELS_H

#include "tinylstm.h"

/*
 * The SMLAD path (tl_dot.c): cores with the DSP extension, unless built with -DTL_NO_DSP. Its inline
 * asm needs more registers than an unoptimized (-O0) build leaves free, so -O0 builds take the
 * portable path, which gives the same bits.
 */
#if defined(__ARM_FEATURE_DSP) && !defined(TL_NO_DSP) && defined(__OPTIMIZE__)
#define TL_SMLAD_PATH 1
#endif

/**
 * `rows` dot products over the same activations: acc[r] = sum_{k<n} w[r*stride + k] * a[k].
 * Rows sharing their input run in one pass on Cortex-M4/M7 (see tl_dot.c).
 */
void tl_dot_rows_s8(const int8_t *w, size_t stride, size_t rows, const int8_t *a, size_t n, int32_t *acc);

/** tl_dot_rows_s8 with 4 (LSTM gate rows of one unit) and 3 (GRU) rows, without the dispatch. */
void tl_dot4_s8(const int8_t *w, size_t stride, const int8_t *a, size_t n, int32_t *acc);
void tl_dot3_s8(const int8_t *w, size_t stride, const int8_t *a, size_t n, int32_t *acc);

#ifdef TL_LAYOUT_W16
#ifdef TL_SMLAD_PATH
#define TL_W16_WIDE_H 1
/** Words needed by tl_widen_s8 for n values: 2 per complete group of four. */
#define TL_WIDE_WORDS(n) (2 * ((n) / 4))
/** out[2q], out[2q+1] = SXTB16 lanes (a[4q], a[4q+2]), (a[4q+1], a[4q+3]) for q < n/4. */
void tl_widen_s8(const int8_t *a, size_t n, uint32_t *out);
#endif

/**
 * Fast ("w16") layout, see tl_layer_t.weights16. The activations of one layer step: x [I], h [H],
 * and on DSP builds hw, h's first 4*(H/4) values widened once per layer step by tl_widen_s8 (the
 * w16 loop then loads four of them with one LDRD instead of LDR + 2 SXTB16).
 */
typedef struct {
    const int8_t *x;
    const int8_t *h;
    size_t I, H;
#ifdef TL_W16_WIDE_H
    uint32_t hw[TL_WIDE_WORDS(TL_MAX_HIDDEN)];
#endif
} tl_w16_in_t;

/** Fill `in` for one step of layer `L` (widening h on DSP builds). */
void tl_w16_in_init(tl_w16_in_t *in, const tl_layer_t *L, const int8_t *x, const int8_t *h);

/**
 * The dot products of one unit's block, the accumulators starting from the biases
 * (bias = the layer's bias + j; rows g*H apart). LSTM (tl_unit4_w16): acc[g] = bias[g*H] +
 * row g . [x ; h] for the gates i, f, g, o. GRU (tl_unit3_w16): acc[0..2] = bias[0], bias[H],
 * bias[2H] + x part of rows r, z, n; then acc[0], acc[1], acc[3] += h part of rows r, z, n,
 * with acc[3] starting from *bias_hn (n_x and n_h stay apart). RNN (tl_unit1_w16): acc[0] = bias[0] + the
 * unit's one row . [x ; h]. Returns the next unit's block.
 */
const int16_t *tl_unit4_w16(const int16_t *w, const tl_w16_in_t *in, const int32_t *bias, int32_t *acc);
const int16_t *tl_unit3_w16(const int16_t *w, const tl_w16_in_t *in, const int32_t *bias, const int32_t *bias_hn,
                            int32_t *acc);
const int16_t *tl_unit1_w16(const int16_t *w, const tl_w16_in_t *in, const int32_t *bias, int32_t *acc);
#endif /* TL_LAYOUT_W16 */

/**
 * One layer step of a cell: reads x [I] and the old h [H]; writes the new hidden state to h_next [H]
 * and, for cells with a cell state, updates c [H] in place (the others ignore c). h and h_next must not
 * overlap.
 */
typedef void (*tl_layer_step_fn)(const tl_layer_t *layer, const int16_t *table, const int8_t *x, const int8_t *h,
                                 int8_t *h_next, int16_t *c);

/**
 * The layer step of an int16-h model (-DTL_HIDDEN16): the same, with x (layer 0: the int16 model input; above it
 * the int16 h of the layer below), h and h_next int16 Q0.15.
 */
typedef void (*tl_layer_step16_fn)(const tl_layer_t *layer, const int16_t *table, const int16_t *x, const int16_t *h,
                                   int16_t *h_next, int16_t *c);

/**
 * Layer 0 of an int8-h model with an int16 input (-DTL_INPUT16; tl_model_t.input_bits): the int8-h layer step with
 * x the int16 model input, summed with h's part in int64 (tl_acc64, tl_requantize64).
 */
typedef void (*tl_layer_step_x16_fn)(const tl_layer_t *layer, const int16_t *table, const int16_t *x, const int8_t *h,
                                     int8_t *h_next, int16_t *c);

/*
 * A firmware of one model links only what that model runs. Its build settings (codegen/emit_c.py
 * `model_settings`: -D flags, or tl_config.h) say what to leave out: TL_ONLY_CELL=TL_CELL_<NAME> keeps one
 * cell in the cell table, TL_ONLY_HIDDEN16 (with TL_HIDDEN16) drops the int8-h steps and head,
 * TL_ONLY_INPUT16_LAYER0 (with TL_INPUT16) the int8 layer steps a one-layer int16-input model never runs, TL_NO_POOL the
 * pooled readouts, TL_NO_STACK input stacking, TL_NO_BIDIR bidirectional models. tl_model_check refuses a model that needs what was left out
 * (TL_ERR_MODEL). A build without them (the host library, the MicroPython module) runs every model.
 */
#ifdef TL_ONLY_CELL
#define TL_WITH_CELL(code) (TL_ONLY_CELL == (code))
#else
#define TL_WITH_CELL(code) 1
#endif
#if defined(TL_ONLY_HIDDEN16) && defined(TL_HIDDEN16)
#define TL_WITH_H8 0
#else
#define TL_WITH_H8 1
#endif
#ifdef TL_NO_POOL
#define TL_WITH_POOL 0
#else
#define TL_WITH_POOL 1
#endif
#ifdef TL_NO_STACK
#define TL_WITH_STACK 0
#else
#define TL_WITH_STACK 1
#endif
#ifdef TL_NO_BIDIR
#define TL_WITH_BIDIR 0
#else
#define TL_WITH_BIDIR 1
#endif

/** tl_cells.c's entry for an int16-h layer step: the function on -DTL_HIDDEN16 builds, NULL (not linked) otherwise. */
#ifdef TL_HIDDEN16
#define TL_STEP16(fn) fn
#else
#define TL_STEP16(fn) 0
#endif
/* A firmware of a one-layer model with an int16 input (TL_ONLY_INPUT16_LAYER0, with TL_INPUT16) runs no int8 layer
 * step: its one layer is layer 0's int16 step. */
#if defined(TL_ONLY_INPUT16_LAYER0) && defined(TL_INPUT16)
#define TL_WITH_H8_LAYERS 0
#else
#define TL_WITH_H8_LAYERS TL_WITH_H8
#endif
/** tl_cells.c's entry for an int8-h layer step: NULL (not linked) on -DTL_ONLY_HIDDEN16 and -DTL_ONLY_INPUT16_LAYER0
 * builds. */
#if TL_WITH_H8_LAYERS
#define TL_STEP8(fn) fn
#else
#define TL_STEP8(fn) 0
#endif
/** tl_cells.c's entry for an int16-input layer 0 step: the function on -DTL_INPUT16 builds that run int8-h models,
 * NULL (not linked) otherwise. */
#if defined(TL_INPUT16) && TL_WITH_H8
#define TL_STEPX16(fn) fn
#else
#define TL_STEPX16(fn) 0
#endif

/** What the driver, the model check and the blob reader need to know of a cell (one line per cell in tl_cells.c). */
typedef struct {
    uint8_t gates;                   /**< gate rows per unit: TL_CELL_<NAME>_GATES */
    uint8_t has_c;                   /**< an int16 cell state with cell_frac fractional bits: TL_CELL_<NAME>_HAS_C */
    uint8_t bias_hn;                 /**< tl_layer_t.bias_hn present: TL_CELL_<NAME>_BIAS_HN */
    tl_layer_step_fn layer_step;     /**< its layer step (tl_<name>.c) */
    tl_layer_step16_fn layer_step16; /**< its int16-h layer step (tl_<name>.c), TL_STEP16(tl_<name>_layer_step16) */
    tl_layer_step_x16_fn layer_step_x16; /**< its int16-input layer 0 step, TL_STEPX16(tl_<name>_layer_step_x16) */
} tl_cell_t;

/** The cells, indexed by TL_CELL_* (the codes of contract/cells.py, generated into tl_contract.h). */
extern const tl_cell_t tl_cells[TL_NUM_CELLS];

/** The entry of cell code `code`, NULL for an unknown code or a cell this build leaves out (TL_ONLY_CELL). */
static inline const tl_cell_t *tl_cell(unsigned code)
{
    return code < TL_NUM_CELLS && tl_cells[code].gates ? &tl_cells[code] : 0;
}

/** The LSTM layer step (PyTorch gate order i, f, g, o), tl_lstm.c. */
void tl_lstm_layer_step(const tl_layer_t *layer, const int16_t *table, const int8_t *x, const int8_t *h, int8_t *h_next,
                        int16_t *c);

/** The GRU layer step (PyTorch formulation), tl_gru.c; c is not used. */
void tl_gru_layer_step(const tl_layer_t *layer, const int16_t *table, const int8_t *x, const int8_t *h, int8_t *h_next,
                       int16_t *c);

/** The Elman RNN layer step (PyTorch's nn.RNN, tanh), tl_rnn.c; c is not used. */
void tl_rnn_layer_step(const tl_layer_t *layer, const int16_t *table, const int8_t *x, const int8_t *h, int8_t *h_next,
                       int16_t *c);

/**
 * Readout pooling (tl_pool.c): for each unit k < H, update the int32 pool word pool[2k..2k+1] with h[k] and
 * write what the head reads to out[k] (TL_READOUT_MEAN: the rounded mean over the n steps since the reset;
 * TL_READOUT_MAX: the maximum). n >= 1 counts this step; at n == 1 the pool starts from h.
 */
void tl_pool_s8(uint8_t readout, int16_t *pool, const int8_t *h, size_t H, int32_t n, int8_t *out);
#ifdef TL_HIDDEN16
void tl_pool_s16(uint8_t readout, int16_t *pool, const int16_t *h, size_t H, int32_t n, int16_t *out);
#endif

/** What the head reads: H values, or 2H ([v_f ; v_b]) for a bidirectional model. */
static inline size_t tl_head_width(const tl_model_t *m)
{
    return (size_t)m->hidden_size * (TL_WITH_BIDIR && m->backward ? 2u : 1u);
}

/** Dense head: y[o] = sat16(requantize(W[o] . h + b[o])) for o < model->output_size, h [tl_head_width]. */
void tl_dense_step(const tl_model_t *model, const int8_t *h, int16_t *y);

/**
 * A bidirectional model's window end (tl_bidir.c): runs the backward layers over the window's
 * S = window / stack steps (s->window), last step first, from the zero state of the reset, with their pooled
 * readout; then writes [v_f ; v_b] to s->head2. Uses s->scratch.
 */
void tl_bidir_backward(tl_state_t *s, const int8_t *v_f);

#ifdef TL_INPUT16
/**
 * int8 weights x int16 activations (tl_dot_s16.c), the int16 counterparts of tl_dot_rows_s8, tl_dot4_s8 and
 * tl_dot3_s8: acc[r] = sum_{k<n} w[r*stride + k] * a[k]. Exact in int32 for n <= 512 (127 * 32768 * 512 < 2^31);
 * the kernel calls them with n <= TL_MAX_HIDDEN (an int16 h) or TL_MAX_INPUT16 (an int16 input).
 */
void tl_dot_rows_s8s16(const int8_t *w, size_t stride, size_t rows, const int16_t *a, size_t n, int32_t *acc);
void tl_dot4_s8s16(const int8_t *w, size_t stride, const int16_t *a, size_t n, int32_t *acc);
void tl_dot3_s8s16(const int8_t *w, size_t stride, const int16_t *a, size_t n, int32_t *acc);

/** The int16-input layer 0 steps (tl_lstm.c, tl_gru.c, tl_rnn.c; signature tl_layer_step_x16_fn). */
void tl_lstm_layer_step_x16(const tl_layer_t *layer, const int16_t *table, const int16_t *x, const int8_t *h,
                            int8_t *h_next, int16_t *c);
void tl_gru_layer_step_x16(const tl_layer_t *layer, const int16_t *table, const int16_t *x, const int8_t *h,
                           int8_t *h_next, int16_t *c);
void tl_rnn_layer_step_x16(const tl_layer_t *layer, const int16_t *table, const int16_t *x, const int8_t *h,
                           int8_t *h_next, int16_t *c);
#endif

#ifdef TL_HIDDEN16

/** The int16-h layer steps (tl_lstm.c, tl_gru.c, tl_rnn.c; signature tl_layer_step16_fn). */
void tl_lstm_layer_step16(const tl_layer_t *layer, const int16_t *table, const int16_t *x, const int16_t *h,
                          int16_t *h_next, int16_t *c);
void tl_gru_layer_step16(const tl_layer_t *layer, const int16_t *table, const int16_t *x, const int16_t *h,
                         int16_t *h_next, int16_t *c);
void tl_rnn_layer_step16(const tl_layer_t *layer, const int16_t *table, const int16_t *x, const int16_t *h,
                         int16_t *h_next, int16_t *c);

/** Dense head on an int16 h: the same as tl_dense_step (W . h in int32, + b in int64: up to 2^31). */
void tl_dense_step16(const tl_model_t *model, const int16_t *h, int16_t *y);
#endif

#endif /* TL_KERNELS_H */
