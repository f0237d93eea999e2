/*
 * TinyLSTM — portable fixed-point LSTM/GRU kernel (C99, no malloc, no float on the hot path).
 *
 * A model is const data (normally in flash) described by tl_model_t; the recurrent state of
 * one stream lives in a tl_state_t that points into a caller-provided buffer. The arithmetic
 * is specified in docs/integer-contract.md and implemented once, in tl_qmath.h.
 *
 * Streaming use:
 *     static int16_t buf[TL_STATE_WORDS(LAYERS, HIDDEN)];
 *     tl_state_t st;
 *     tl_state_init(&st, &model, buf, TL_STATE_WORDS(LAYERS, HIDDEN));
 *     for each sample: tl_quantize_input(&model, x, xq); tl_step(&st, xq, y);
 *     (a model whose input is int16, tl_input_bits: tl_quantize_input_s16 and tl_step_s16)
 */
#ifndef TINYLSTM_H
#define TINYLSTM_H

#include <stddef.h>
#include <stdint.h>

/* Build settings (TL_HIDDEN16, TL_LAYOUT_W16, ...) for build systems that take no -D flags (the Arduino library,
 * the ESP-IDF component): a tl_config.h beside the sources, written by `tinylstm build` (as LVGL reads lv_conf.h). */
#if defined(__has_include)
#if __has_include("tl_config.h")
#include "tl_config.h"
#endif
#endif

/* An int16-h model's input is int16 too: a build that runs int16-h models runs int16-input ones (TL_INPUT16). */
#if defined(TL_HIDDEN16) && !defined(TL_INPUT16)
#define TL_INPUT16 1
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* TL_KERNEL_VERSION, the model limits (TL_MAX_LAYERS, TL_MAX_HIDDEN, TL_MAX_INPUT), the fixed-point
 * formats, the table size, the cell codes (TL_CELL_*) and TL_STATE_WORDS: generated from
 * contract/constants.py and contract/cells.py. */
#include "tl_contract.h"

/** Declares an emitted weights16 array 4-byte aligned (the DSP loop reads it with LDM). */
#if defined(__GNUC__) || defined(__clang__)
#define TL_ALIGN4 __attribute__((aligned(4)))
#else
#define TL_ALIGN4
#endif

/** Status codes returned by every call that can fail. */
typedef enum {
    TL_OK = 0,
    TL_ERR_ARG = -1,    /**< NULL pointer, a size that does not match the model, or the step of the other input type */
    TL_ERR_MODEL = -2,  /**< the model descriptor is inconsistent or out of the supported range */
    TL_ERR_BUFFER = -3, /**< the state buffer is too small */
    TL_ERR_INPUT = -4   /**< a float input sample is NaN or infinite */
} tl_status_t;

/** One recurrent layer: gate rows in PyTorch order (LSTM i,f,g,o; GRU r,z,n). */
typedef struct {
    uint16_t input_size;   /**< I: width of this layer's input */
    uint16_t hidden_size;  /**< H */
    const int8_t *weights; /**< [G*H][I+H] row-major; a row covers the concatenated [x ; h] (see weights16) */
    const int32_t *bias;   /**< [G*H] at the accumulator scale of each row (GRU n rows: b_in) */
    const int32_t
        *bias_hn;        /**< cells with TL_CELL_<NAME>_BIAS_HN (GRU): [H] recurrent bias of the last gate; else NULL */
    const int32_t *mult; /**< [G*H] requantization multipliers, accumulator -> Q3.12 */
    const int8_t *shift; /**< [G*H] requantization shifts (TL_SHIFT_MIN..TL_SHIFT_MAX) */
    int8_t cell_frac;    /**< cells with a cell state (LSTM): fractional bits F of c (0..TL_CELL_FRAC_MAX) */
    const int8_t *
        scale_exp; /**< [G*H] in -4..4, the scale exponent between the x and h parts: acc = acc_x * 2^max(a,0) + acc_h * 2^max(-a,0) */
    /**
     * Optional fast layout ("w16", chosen by codegen for Cortex-M4/M7 with DSP); NULL = use `weights`.
     * When set, the kernel reads only this array (and `weights` may be NULL). It holds the same int8
     * weights, each multiplied by its part's alignment factor (x part: 2^max(a,0), h part:
     * 2^max(-a,0); |value| <= 128 * 16), so acc_x * 2^max(a,0) + acc_h * 2^max(-a,0) is one plain
     * sum (exact integers: the same bits). One block of G*(I+H) int16 values (GRU: plus padding,
     * below) per unit j, blocks in unit order. A block is the x part (n = I, activations x) then
     * the h part (n = H, activations h), each part being:
     *   - for each group q < n/4 of four columns k = 4q..4q+3, for each gate g < G (row g*H + j):
     *     the four values in the order k = 4q, 4q+2, 4q+1, 4q+3 (the lanes SXTB16 unpacks from
     *     four int8 activations);
     *   - then the n%4 tail columns k = 4*(n/4).. n-1: for each gate g, its values in column order.
     * With G = 3 (GRU) a part with an odd G*n is followed by one 0 (padding), so every part starts
     * 4-byte aligned; the array itself must be 4-byte aligned (TL_ALIGN4; checked by
     * tl_model_check on DSP builds). `scale_exp` is still required but not read for this layout.
     * Costs 2 bytes per weight instead of 1, and on DSP builds a 512-byte stack buffer during the
     * step (h widened once per layer); for C firmware builds (the .tlm blob is int8 only). The
     * kernel reads it only when built with -DTL_LAYOUT_W16 (emitted w16 models #error without
     * it; tl_model_check rejects a layer with no `weights` otherwise), so int8 firmware does not
     * carry the code.
     */
    const int16_t *weights16;
} tl_layer_t;

/** A whole model: stacked recurrent layers and a dense head applied at every step. */
typedef struct {
    uint32_t hash;      /**< model identity (first 4 bytes of the SHA-256 of its integer data) */
    uint8_t cell;       /**< TL_CELL_* (csrc/tl_cells.c) */
    uint8_t num_layers; /**< 1..TL_MAX_LAYERS */
    /**
     * The hidden state: TL_HIDDEN_BITS (8, int8 Q0.7; 0 also means 8, for descriptors written before
     * the field) or TL_HIDDEN16_BITS (16, int16 Q0.15 with int8 weights: the kernel, and the model file,
     * must be built with -DTL_HIDDEN16, otherwise tl_model_check refuses the model). An int16-h model
     * takes an int16 input (tl_step_s16; layer 0 reads at most TL_MAX_INPUT16 values), has no weights16,
     * and its gate rows' multipliers are below 2^TL_MULT16_BITS.
     */
    uint8_t hidden_bits;
    /**
     * What the head reads (TL_READOUT_*): the last layer's h (TL_READOUT_LAST, 0: descriptors written before the
     * field), or its mean or maximum over the steps since the last reset (window models, csrc/tl_pool.c; the
     * state then holds TL_POOL_WORDS(H) more words).
     */
    uint8_t readout;
    /**
     * Input stacking (docs/integer-contract.md, "Input stacking"): k samples per recurrent step, 1 (or 0, for
     * descriptors written before the field) for none. A stacked model's layer 0 reads k * input_size values;
     * tl_step buffers each sample (TL_STACK_WORDS(k * C) more state words, TL_STACK_WORDS(2 * k * C) for an
     * int16-h model's int16 samples) and runs the layers on every k-th
     * since the reset; between them the head reads the last step's readout again.
     */
    uint8_t stack;
    uint16_t input_size;        /**< C: input channels of one sample */
    uint16_t hidden_size;       /**< H, shared by all layers */
    uint16_t output_size;       /**< O */
    const tl_layer_t *layers;   /**< [num_layers] */
    const int8_t *head_weights; /**< [O][H] */
    const int32_t *head_bias;   /**< [O] */
    const int32_t *head_mult;   /**< [O] accumulator -> int16 output */
    const int8_t *head_shift;   /**< [O] */
    const int16_t *act_table;   /**< entries TL_TABLE_LO..TL_TABLE_HI + 1 of the tanh table, Q3.12 in -> Q0.15 out */
    const float *input_mean;    /**< [C] normalisation mean (only used by tl_quantize_input / _s16) */
    const float *input_mul;     /**< [C] 1 / (std * input scale) */
    /**
     * A bidirectional window model (docs/integer-contract.md, "Bidirectional window models"): its backward
     * layers [num_layers] (NULL: unidirectional), which run over the window's steps in reverse when its
     * `window`-th sample since the reset arrives; the head then reads [forward readout ; backward readout]
     * (head_weights is [O][2H]), and before that sample the head of zeros. The state keeps the window's inputs
     * (TL_BIDIR_WORDS). A sample after the window's last starts the next window: tl_step resets first.
     * int8 hidden state only.
     */
    const tl_layer_t *backward;
    uint16_t window; /**< W, the samples of a bidirectional model's window (1..TL_MAX_WINDOW, >= stack) */
    /**
     * The model input's bits (tl_input_bits): 0 (descriptors written before the field) or 8 for the hidden
     * state's own input (an int8-h model's int8, an int16-h model's int16); 16 for an int8-h model with an int16
     * input (docs/integer-contract.md, "int16 input"): its layer 0 reads int16 samples (tl_step_s16, at most
     * TL_MAX_INPUT16 per step) with int8 rows and no weights16, sums each gate row in int64 with a multiplier below
     * 2^TL_MULT16_BITS, and writes the int8 h the layers above read. Needs a build with -DTL_INPUT16 (or
     * -DTL_HIDDEN16, which implies it); unidirectional models only.
     */
    uint8_t input_bits;
} tl_model_t;

/** The bits of `model`'s input words: 16 (tl_step_s16, tl_quantize_input_s16) or 8 (tl_step, tl_quantize_input). */
static inline unsigned tl_input_bits(const tl_model_t *model)
{
    return model->hidden_bits == TL_HIDDEN16_BITS || model->input_bits == 16 ? 16u : 8u;
}

/**
 * The recurrent state of one stream. All pointers point into the buffer given to tl_state_init.
 * An int8-h model uses h and scratch (h16 and scratch16 are NULL); an int16-h model uses h16 and
 * scratch16 (h and scratch are NULL).
 */
typedef struct {
    const tl_model_t *model;
    int16_t *c;         /**< [num_layers * H] cell state (cells with TL_CELL_<NAME>_HAS_C; unused by the others) */
    int8_t *h;          /**< [num_layers * H] hidden state, int8 Q0.7 */
    int8_t *scratch;    /**< [H] the layer's next hidden state while its old one is still read */
    uint32_t steps;     /**< recurrent steps since the last reset (a stacked model's: one per k samples), saturating */
    int16_t *h16;       /**< int16-h models: [num_layers * H] hidden state, int16 Q0.15 */
    int16_t *scratch16; /**< int16-h models: [H] the layer's next hidden state */
    int16_t *pool;      /**< pooled readouts: [2 * H] one int32 per unit (tl_pool.c); NULL otherwise */
    int8_t *stack;      /**< stacked int8-input models: [k * C] the inputs of the step being filled; else NULL */
    int16_t *stack16;   /**< stacked int16-input models: [k * C] the same, int16 (their input); else NULL */
    uint32_t phase;     /**< stacked models: samples in `stack` / `stack16` (0..k-1) */
    /* bidirectional models (NULL / 0 otherwise): */
    int16_t *cb;     /**< [num_layers * H] the backward layers' cell state */
    int16_t *pool_b; /**< pooled readouts: [2 * H] the backward pool */
    int8_t *hb;      /**< [num_layers * H] the backward layers' hidden state */
    int8_t *head2;   /**< [2 * H] what the head reads: [v_f ; v_b] at the window's end, zeros before */
    int8_t *window;  /**< [window * C] the window's inputs */
    uint32_t wpos;   /**< samples in `window` since the reset (0..window) */
} tl_state_t;

/* int16 words of state buffer for `layers` layers of `hidden` units (tl_contract.h): TL_STATE_WORDS(layers, hidden)
 * for an int8 hidden state, TL_STATE_WORDS_H16(layers, hidden) for an int16 one, plus TL_POOL_WORDS(hidden) for a
 * pooled readout, TL_STACK_WORDS(bytes) for a stacked model (bytes = k * C int8 inputs, 2 * k * C for int16) and TL_BIDIR_WORDS(layers, hidden, window,
 * inputs) (+ TL_POOL_WORDS(hidden) when pooled) for a bidirectional one (the generated TL_<NAME>_STATE_WORDS adds it
 * all up). */

/**
 * Check a model descriptor: a known cell, sizes in range, required pointers present, shifts in
 * TL_SHIFT_MIN..TL_SHIFT_MAX, scale exponents in -TL_MAX_SCALE_EXP..TL_MAX_SCALE_EXP,
 * |bias| <= TL_BIAS_LIMIT, input multipliers (if present) positive and finite, a hidden state of 8 bits
 * (or 16 on -DTL_HIDDEN16 builds, with gate multipliers below 2^TL_MULT16_BITS and no weights16), an input of
 * 0 or 8 bits (or 16 on -DTL_INPUT16 builds: layer 0 as an int16-h layer, no weights16, not bidirectional).
 * @return TL_OK or TL_ERR_MODEL.
 */
tl_status_t tl_model_check(const tl_model_t *model);

/** int16 words of state buffer `model` needs (0 if the model is invalid). */
size_t tl_state_words(const tl_model_t *model);

/**
 * Bind a state to a model and a buffer of `words` int16 words, and reset it.
 * @return TL_OK, TL_ERR_ARG, TL_ERR_MODEL, or TL_ERR_BUFFER if `words` < tl_state_words(model).
 */
tl_status_t tl_state_init(tl_state_t *state, const tl_model_t *model, int16_t *buffer, size_t words);

/** Zero the hidden and cell state, and the held readout and stacking phase (start of a new window or stream). */
void tl_reset(tl_state_t *state);

/**
 * One time step (one sample) of a model with an int8 input (tl_input_bits 8): int8 input [input_size] in, int16
 * output [output_size] out (may be NULL).
 * The state carries over to the next call; nothing is reset implicitly, except that a bidirectional model's
 * sample after its window's last starts the next window. A stacked model runs its layers on every k-th sample
 * since the reset; at the others y is the head of the last step's readout (of zeros before the first). A
 * bidirectional model's y is the head of zeros until the window's last sample, which gives the window's answer.
 * @return TL_OK or TL_ERR_ARG.
 */
tl_status_t tl_step(tl_state_t *state, const int8_t *x, int16_t *y);

/**
 * tl_step of a model with an int16 input (tl_input_bits 16): an int16-h model (int16x8: int8 weights, int16 input
 * and hidden state; docs/integer-contract.md, "int16 hidden state"), or an int8-h model with an int16 input
 * ("int16 input").
 * @return TL_OK, or TL_ERR_ARG (also for a model with an int8 input, which tl_step runs).
 */
tl_status_t tl_step_s16(tl_state_t *state, const int16_t *x, int16_t *y);
/**
 * Run `steps` consecutive steps: `xs` is [steps][input_size]; `ys`, if not NULL, receives
 * [steps][output_size]. Equivalent to calling tl_step in a loop.
 * @return TL_OK or TL_ERR_ARG.
 */
tl_status_t tl_run(tl_state_t *state, const int8_t *xs, size_t steps, int16_t *ys);

/** tl_run of a model with an int16 input (tl_step_s16): `xs` is [steps][input_size] int16. */
tl_status_t tl_run_s16(tl_state_t *state, const int16_t *xs, size_t steps, int16_t *ys);
/**
 * Convert one float sample [input_size] to the model's int8 input with the generated
 * normalisation constants: q = sat8(round_half_away((x - mean) * mul)).
 * @return TL_OK; TL_ERR_INPUT (q untouched) if a value is NaN or infinite; TL_ERR_ARG if a
 *         multiplier is not a positive finite number, a mean is not finite, or the model's input is int16
 *         (tl_quantize_input_s16).
 */
tl_status_t tl_quantize_input(const tl_model_t *model, const float *x, int8_t *q);

/**
 * tl_quantize_input for a model with an int16 input (tl_input_bits 16): q = sat16(round_half_away((x - mean) *
 * mul)). Each of the two refuses the other's model (TL_ERR_ARG), as tl_step and tl_step_s16 do.
 */
tl_status_t tl_quantize_input_s16(const tl_model_t *model, const float *x, int16_t *q);
/** Index of the largest of `n` outputs (the first one on ties); -1 if n == 0. */
int tl_argmax(const int16_t *y, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* TINYLSTM_H */
