/* Public API: model checks, state binding, and the step/run drivers over stacked layers. */
#include <float.h>
#include <string.h>

#include "tl_kernels.h"

/* |bias| <= TL_BIAS_LIMIT keeps every int32 accumulator free of overflow (docs/integer-contract.md). */
static int biases_in_range(const int32_t *b, size_t n)
{
    for (size_t k = 0; k < n; ++k)
        if (b[k] > TL_BIAS_LIMIT || b[k] < -TL_BIAS_LIMIT) return 0;
    return 1;
}

#ifdef TL_HIDDEN16
/* The model's hidden state is int16 (an int16-h model). */
static int hidden16(const tl_model_t *m) { return m->hidden_bits == TL_HIDDEN16_BITS; }
#else /* int8-h builds refuse int16-h models (tl_model_check) and carry none of their code */
#define hidden16(m) ((void)(m), 0)
#endif

#ifdef TL_INPUT16
/* An int8-h model with an int16 input (tl_model_t.input_bits 16): its layer 0 steps with the cell's layer_step_x16. */
static int input16_h8(const tl_model_t *m) { return !hidden16(m) && m->input_bits == 16; }
#else /* builds without -DTL_INPUT16 refuse such models (tl_model_check) and carry none of their code */
#define input16_h8(m) ((void)(m), 0)
#endif

/* k, the samples per recurrent step (0 in descriptors written before the field means 1). */
static size_t stack_of(const tl_model_t *m) { return m->stack > 1 ? m->stack : 1; }

/* Layer n (of either direction) of model m: sizes, pointers, biases and requantization parameters in range. */
static int layer_ok(const tl_model_t *m, const tl_cell_t *cell, const tl_layer_t *L, size_t n, int32_t mult_max)
{
    const size_t gates = cell->gates;
    if (L->hidden_size != m->hidden_size) return 0;
    if (L->input_size != (n == 0 ? m->input_size * stack_of(m) : m->hidden_size)) return 0;
    /* int16-h, and layer 0 of an int16-input model: int8 weights only */
    if ((hidden16(m) || (n == 0 && input16_h8(m))) && (!L->weights || L->weights16)) return 0;
#ifdef TL_LAYOUT_W16
    if ((!L->weights && !L->weights16) || !L->bias || !L->mult || !L->shift || !L->scale_exp) return 0;
#ifdef TL_SMLAD_PATH
    if (L->weights16 && ((uintptr_t)L->weights16 & 3u)) return 0; /* LDM needs 4-byte alignment */
#endif
#else /* built without the w16 layout: a model that has only weights16 cannot run */
    if (!L->weights || !L->bias || !L->mult || !L->shift || !L->scale_exp) return 0;
#endif
    if (cell->bias_hn && (!L->bias_hn || !biases_in_range(L->bias_hn, L->hidden_size))) return 0;
    if (!biases_in_range(L->bias, gates * L->hidden_size)) return 0;
    if (cell->has_c && (L->cell_frac < 0 || L->cell_frac > TL_CELL_FRAC_MAX)) return 0;
    for (size_t r = 0; r < gates * L->hidden_size; ++r)
        if (L->shift[r] < TL_SHIFT_MIN || L->shift[r] > TL_SHIFT_MAX || L->mult[r] < 0 || L->mult[r] > mult_max ||
            L->scale_exp[r] < -TL_MAX_SCALE_EXP || L->scale_exp[r] > TL_MAX_SCALE_EXP)
            return 0;
    return 1;
}

tl_status_t tl_model_check(const tl_model_t *m)
{
    if (!m || !m->layers || !m->head_weights || !m->head_bias || !m->head_mult || !m->head_shift || !m->act_table)
        return TL_ERR_MODEL;
    if (m->hidden_bits != 0 && m->hidden_bits != TL_HIDDEN_BITS && !hidden16(m)) return TL_ERR_MODEL;
    /* the input: 0 or 8 (the hidden state's own), or 16; an int16-h model's is int16 */
    if ((m->input_bits != 0 && m->input_bits != 8 && m->input_bits != 16) || (hidden16(m) && m->input_bits == 8))
        return TL_ERR_MODEL;
    if (m->input_bits == 16 && !hidden16(m) && !input16_h8(m)) return TL_ERR_MODEL; /* a build without TL_INPUT16 */
    /* int16-h gate rows, and those of an int16-input layer 0: M < 2^TL_MULT16_BITS keeps tl_requantize64's
     * product inside int64 */
    const int32_t mult16 = (int32_t)((1L << TL_MULT16_BITS) - 1);
    const int32_t mult_max = hidden16(m) ? mult16 : INT32_MAX;
    const tl_cell_t *cell = tl_cell(m->cell);
    if (!cell) return TL_ERR_MODEL;
    if (m->num_layers < 1 || m->num_layers > TL_MAX_LAYERS) return TL_ERR_MODEL;
    if (m->hidden_size < 1 || m->hidden_size > TL_MAX_HIDDEN) return TL_ERR_MODEL;
    if (m->input_size < 1 || m->input_size > TL_MAX_INPUT || m->output_size < 1) return TL_ERR_MODEL;
    if (m->readout >= TL_NUM_READOUTS) return TL_ERR_MODEL;
    if ((size_t)m->input_size * stack_of(m) > (tl_input_bits(m) == 16 ? TL_MAX_INPUT16 : TL_MAX_INPUT))
        return TL_ERR_MODEL;
    /* what this build left out (tl_kernels.h): a firmware of one model runs only that model's kind */
    if ((!TL_WITH_H8 && !hidden16(m)) || (TL_WITH_H8 && !TL_WITH_H8_LAYERS && !(input16_h8(m) && m->num_layers == 1)) ||
        (!TL_WITH_POOL && m->readout != TL_READOUT_LAST) || (!TL_WITH_STACK && stack_of(m) > 1))
        return TL_ERR_MODEL;
    if (m->backward && (!TL_WITH_BIDIR || tl_input_bits(m) == 16 || m->window < stack_of(m))) /* window: a u16 */
        return TL_ERR_MODEL;
    for (size_t n = 0; n < m->num_layers; ++n)
        if (!layer_ok(m, cell, &m->layers[n], n, n == 0 && input16_h8(m) ? mult16 : mult_max) ||
            (TL_WITH_BIDIR && m->backward && !layer_ok(m, cell, &m->backward[n], n, mult_max)))
            return TL_ERR_MODEL;
    if (!biases_in_range(m->head_bias, m->output_size)) return TL_ERR_MODEL;
    for (size_t o = 0; o < m->output_size; ++o)
        if (m->head_shift[o] < TL_SHIFT_MIN || m->head_shift[o] > TL_SHIFT_MAX || m->head_mult[o] < 0)
            return TL_ERR_MODEL;
    if (m->input_mul) /* optional (callers with quantized samples); tl_quantize_input(_s16) needs 0 < mul < inf */
        for (size_t k = 0; k < m->input_size; ++k)
            if (!(m->input_mul[k] > 0.0f && m->input_mul[k] <= FLT_MAX)) return TL_ERR_MODEL;
    return TL_OK;
}

/* TL_MODEL_CHECKED_AT_BUILD=<model hash>: the build ran this tl_model_check on the host over the one model the
 * program links, the model of that hash, with the program's settings (host/boards/model_check.py: `tinylstm
 * build` does for a bare-metal firmware), so tl_state_words and tl_state_init take that model as checked: a
 * constant in flash does not change after that, and the check's loops over every row stay out of the firmware.
 * Any other model is refused (TL_ERR_MODEL), never run unchecked: a tl_model.c swapped in after the build, or a
 * caller's descriptor in a program that should not set this. 0 (the default): every model is checked. */
#ifndef TL_MODEL_CHECKED_AT_BUILD
#define TL_MODEL_CHECKED_AT_BUILD 0
#endif
static tl_status_t checked(const tl_model_t *m)
{
#if TL_MODEL_CHECKED_AT_BUILD
    return m && m->hash == (uint32_t)(TL_MODEL_CHECKED_AT_BUILD) ? TL_OK : TL_ERR_MODEL;
#else
    return tl_model_check(m);
#endif
}

/* The words of the layers' state (before the pool). */
static size_t recurrent_words(const tl_model_t *m)
{
    return hidden16(m) ? TL_STATE_WORDS_H16(m->num_layers, m->hidden_size)
                       : TL_STATE_WORDS(m->num_layers, m->hidden_size);
}

/* The words of a pooled readout's state (after the layers'). */
static size_t pool_words(const tl_model_t *m)
{
    return TL_WITH_POOL && m->readout != TL_READOUT_LAST ? TL_POOL_WORDS(m->hidden_size) : 0;
}

/* The bytes of one model input value: an int8, or an int16 (tl_input_bits). */
static size_t input_bytes(const tl_model_t *m) { return tl_input_bits(m) / 8u; }

/* The words of a stacked model's input buffer (after the pool). */
static size_t stack_words(const tl_model_t *m)
{
    return stack_of(m) > 1 ? TL_STACK_WORDS((size_t)m->stack * m->input_size * input_bytes(m)) : 0;
}

/* The words of a bidirectional model's backward stack and window (after the stacking buffer). */
static size_t bidir_words(const tl_model_t *m)
{
    return TL_WITH_BIDIR && m->backward
               ? TL_BIDIR_WORDS(m->num_layers, m->hidden_size, m->window, m->input_size) + pool_words(m)
               : 0;
}

size_t tl_state_words(const tl_model_t *m)
{
    if (checked(m) != TL_OK) return 0;
    return recurrent_words(m) + pool_words(m) + stack_words(m) + bidir_words(m);
}

tl_status_t tl_state_init(tl_state_t *s, const tl_model_t *m, int16_t *buffer, size_t words)
{
    if (!s || !buffer) return TL_ERR_ARG;
    if (checked(m) != TL_OK) return TL_ERR_MODEL;
    if (words < tl_state_words(m)) return TL_ERR_BUFFER;
    const size_t cells = (size_t)m->num_layers * m->hidden_size;
    s->model = m;
    s->c = buffer;
    if (hidden16(m)) {
        s->h = s->scratch = NULL;
        s->h16 = buffer + cells;
        s->scratch16 = s->h16 + cells;
    } else {
        s->h = (int8_t *)(buffer + cells);
        s->scratch = s->h + cells;
        s->h16 = s->scratch16 = NULL;
    }
    s->pool = pool_words(m) ? buffer + recurrent_words(m) : NULL;
    int16_t *stack = TL_WITH_STACK && stack_of(m) > 1 ? buffer + recurrent_words(m) + pool_words(m) : NULL;
    s->stack = input_bytes(m) == 1 ? (int8_t *)stack : NULL;
    s->stack16 = input_bytes(m) == 1 ? NULL : stack;
    s->cb = s->pool_b = NULL;
    s->hb = s->head2 = s->window = NULL;
    if (bidir_words(m)) { /* [cb: L*H words][pool_b: pooled readouts][bytes: hb L*H, head2 2H, window W*C] */
        s->cb = buffer + recurrent_words(m) + pool_words(m) + stack_words(m);
        s->pool_b = pool_words(m) ? s->cb + cells : NULL;
        s->hb = (int8_t *)(s->cb + cells + pool_words(m));
        s->head2 = s->hb + cells;
        s->window = s->head2 + 2 * (size_t)m->hidden_size;
    }
    tl_reset(s);
    return TL_OK;
}

/* Zeroes every state word: the layers', a pooled readout's, a stacked model's input buffer, a bidirectional model's
 * backward stack, head input and window, and the scratch vector,
 * which a stacked model's head reads between steps (the last step's readout: the pooled vector, or a copy of the
 * last layer's h). */
void tl_reset(tl_state_t *s)
{
    const size_t H = s->model->hidden_size, cells = (size_t)s->model->num_layers * H;
    s->steps = 0;
    s->phase = 0;
    s->wpos = 0;
    if (s->pool) memset(s->pool, 0, TL_POOL_WORDS(H) * sizeof *s->pool);
    if (s->stack) memset(s->stack, 0, (size_t)s->model->stack * s->model->input_size);
#ifdef TL_INPUT16 /* only int16-input models have it */
    if (s->stack16) memset(s->stack16, 0, (size_t)s->model->stack * s->model->input_size * sizeof *s->stack16);
#endif
    if (TL_WITH_BIDIR && s->cb) {
        memset(s->cb, 0, cells * sizeof *s->cb);
        if (s->pool_b) memset(s->pool_b, 0, TL_POOL_WORDS(H) * sizeof *s->pool_b);
        memset(s->hb, 0, cells + 2 * H + (size_t)s->model->window * s->model->input_size);
    }
#ifdef TL_HIDDEN16
    if (s->h16) {
        for (size_t k = 0; k < cells; ++k) {
            s->c[k] = 0;
            s->h16[k] = 0;
        }
        for (size_t k = 0; k < H; ++k) s->scratch16[k] = 0;
        return;
    }
#endif
    for (size_t k = 0; k < cells; ++k) {
        s->c[k] = 0;
        s->h[k] = 0;
    }
    for (size_t k = 0; k < H; ++k) s->scratch[k] = 0;
}

/* n of the pooled readout: the steps since the reset, this one included (saturating). */
static int32_t pool_count(const tl_state_t *s) { return s->steps < INT32_MAX ? (int32_t)s->steps + 1 : INT32_MAX; }

/* One more recurrent step, saturating: a never-reset stream must not wrap to 0 after 2^32 steps (a pooled
 * readout would start over where golden and MicroPython keep n at INT32_MAX). */
static void count_step(tl_state_t *s)
{
    if (s->steps < UINT32_MAX) s->steps++;
}

/* A stacked model: counts a sample buffered; 1 once it was the step's k-th (the layers run), else 0. */
static int stack_full(tl_state_t *s)
{
    if (++s->phase < s->model->stack) return 0;
    s->phase = 0;
    return 1;
}

#if TL_WITH_H8
/* n bytes, four at a time (memcpy of 4 bytes: one LDR/STR pair on Cortex-M, any alignment). */
static void copy_s8(int8_t *dst, const int8_t *src, size_t n)
{
    size_t k = 0;
    for (; k + 4 <= n; k += 4) {
        uint32_t v;
        memcpy(&v, src + k, sizeof v);
        memcpy(dst + k, &v, sizeof v);
    }
    for (; k < n; ++k) dst[k] = src[k];
}

/* A stacked int8-input model (s->stack): buffers sample x; returns the step's k samples once the k-th is in,
 * else NULL. */
static const int8_t *stack_sample(tl_state_t *s, const int8_t *x)
{
    const size_t C = s->model->input_size;
    copy_s8(s->stack + (size_t)s->phase * C, x, C);
    return stack_full(s) ? s->stack : NULL;
}

/* The layers and the readout of one recurrent step of an int8-h model, its input x (int8), or x16 (an int16-input
 * model's; x is then NULL); leaves the readout in s->scratch. */
static void layers_step8(tl_state_t *s, const int8_t *x, const int16_t *x16)
{
    const tl_model_t *m = s->model;
    const size_t H = m->hidden_size;
    const tl_cell_t *cell = &tl_cells[m->cell]; /* the cell was checked at tl_state_init */
    const int8_t *in = x;
    (void)x16; /* read on -DTL_INPUT16 builds only */
    for (size_t n = 0; n < m->num_layers; ++n) {
        int8_t *h = s->h + n * H;
#ifdef TL_INPUT16
        if (n == 0 && x16)
            cell->layer_step_x16(&m->layers[0], m->act_table, x16, h, s->scratch, s->c);
        else
#endif
            cell->layer_step(&m->layers[n], m->act_table, in, h, s->scratch, s->c + n * H);
        copy_s8(h, s->scratch, H);
        in = h;
    }
    if (TL_WITH_POOL && s->pool) tl_pool_s8(m->readout, s->pool, in, H, pool_count(s), s->scratch);
    count_step(s);
}
#endif

#ifdef TL_INPUT16
/* A stacked int16-input model (s->stack16): stack_sample for its int16 samples. */
static const int16_t *stack_sample16(tl_state_t *s, const int16_t *x)
{
    const size_t C = s->model->input_size;
    memcpy(s->stack16 + (size_t)s->phase * C, x, C * sizeof *x);
    return stack_full(s) ? s->stack16 : NULL;
}
#endif

#ifdef TL_HIDDEN16
/* tl_step_s16 of an int16-h model: layer 0 reads the int16 input (x, NULL between a stacked model's steps), the
 * layers above the int16 h below them; the readout stays in s->scratch16. */
static void step16(tl_state_t *s, const int16_t *x, int16_t *y)
{
    const tl_model_t *m = s->model;
    const size_t H = m->hidden_size;
    const tl_layer_step16_fn layer_step = tl_cells[m->cell].layer_step16;
    if (x) {
        const int16_t *in = x;
        for (size_t n = 0; n < m->num_layers; ++n) {
            int16_t *h = s->h16 + n * H;
            layer_step(&m->layers[n], m->act_table, in, h, s->scratch16, s->c + n * H);
            memcpy(h, s->scratch16, H * sizeof *h);
            in = h;
        }
        if (TL_WITH_POOL && s->pool) tl_pool_s16(m->readout, s->pool, in, H, pool_count(s), s->scratch16);
        count_step(s);
    }
    if (y) tl_dense_step16(m, s->scratch16, y);
}
#endif

tl_status_t tl_step(tl_state_t *s, const int8_t *x, int16_t *y)
{
    if (!s || !s->model || !x || input_bytes(s->model) != 1) return TL_ERR_ARG; /* int16 input: tl_step_s16 */
#if TL_WITH_H8
#if TL_WITH_BIDIR
    const int bidir = s->window != NULL;
    if (bidir) { /* buffer the sample; the one after the window's last starts the next window */
        const size_t C = s->model->input_size;
        if (s->wpos >= s->model->window) tl_reset(s);
        copy_s8(s->window + (size_t)s->wpos++ * C, x, C);
    }
#endif
    if (TL_WITH_STACK && s->stack) x = stack_sample(s, x); /* NULL between steps: the head reads the held readout */
    if (x) layers_step8(s, x, NULL);
    const int8_t *v = s->scratch; /* the readout: the pooled vector, or a copy of the last layer's h */
#if TL_WITH_BIDIR
    if (bidir) {
        if (s->wpos == s->model->window) tl_bidir_backward(s, s->scratch);
        v = s->head2;
    }
#endif
    if (y) tl_dense_step(s->model, v, y);
#else
    (void)y; /* an int16-h-only build runs no int8-input model (tl_model_check): never reached */
#endif
    return TL_OK;
}

tl_status_t tl_step_s16(tl_state_t *s, const int16_t *x, int16_t *y)
{
    if (!s || !s->model || !x || input_bytes(s->model) != 2) return TL_ERR_ARG; /* int8 input: tl_step */
#ifdef TL_INPUT16
    if (TL_WITH_STACK && s->stack16) x = stack_sample16(s, x); /* NULL between steps: the held readout */
#if TL_WITH_H8
    if (input16_h8(s->model)) {
        if (x) layers_step8(s, NULL, x);
        if (y) tl_dense_step(s->model, s->scratch, y);
        return TL_OK;
    }
#endif
#ifdef TL_HIDDEN16
    step16(s, x, y);
#endif
#else
    (void)y; /* an int16 input is an int16-h or int16-input model's, which this build refuses (tl_model_check) */
#endif
    return TL_OK;
}

tl_status_t tl_run(tl_state_t *s, const int8_t *xs, size_t steps, int16_t *ys)
{
    if (!s || !s->model || (!xs && steps)) return TL_ERR_ARG;
    const size_t I = s->model->input_size, O = s->model->output_size;
    for (size_t t = 0; t < steps; ++t) {
        tl_status_t st = tl_step(s, xs + t * I, ys ? ys + t * O : NULL);
        if (st != TL_OK) return st;
    }
    return TL_OK;
}

tl_status_t tl_run_s16(tl_state_t *s, const int16_t *xs, size_t steps, int16_t *ys)
{
    if (!s || !s->model || (!xs && steps)) return TL_ERR_ARG;
    const size_t I = s->model->input_size, O = s->model->output_size;
    for (size_t t = 0; t < steps; ++t) {
        tl_status_t st = tl_step_s16(s, xs + t * I, ys ? ys + t * O : NULL);
        if (st != TL_OK) return st;
    }
    return TL_OK;
}

int tl_argmax(const int16_t *y, size_t n)
{
    if (!y || n == 0) return -1;
    size_t best = 0;
    for (size_t k = 1; k < n; ++k)
        if (y[k] > y[best]) best = k;
    return (int)best;
}
