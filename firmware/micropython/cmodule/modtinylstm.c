/*
 * MicroPython binding of the TinyLSTM kernel: tinylstm.Model(blob).
 *
 * Built two ways from this one file: as a user C module (micropython.mk / micropython.cmake,
 * registered at the bottom) and as a dynamic native module (natmod/tinylstm_natmod.c includes
 * this file after py/dynruntime.h and registers the type at import time).
 *
 * The model points into the blob (zero-copy; the object keeps the blob alive). Pass `bytes`:
 * mutating a bytearray after construction changes the model under the kernel's feet.
 * step() allocates nothing: it writes into a caller-given array('h') or into the model's own one.
 *
 * Both hidden-state formats run: int8 Q0.7 and int16 Q0.15 (the blob header's hidden bits). The builds
 * (micropython.mk, micropython.cmake, natmod/Makefile) define TL_HIDDEN16 for that; without it the
 * kernel refuses int16-h blobs (tl_model_check) and Model() raises ValueError. An int16-h model is int16
 * end to end (int16x8): its samples are int16 (array('h'), or bytes of little-endian int16) and run with
 * tl_step_s16 / tl_quantize_input_s16, as are those of an int8-h model with an int16 input (the header's flag,
 * tl_input_bits); any other int8-h model's are int8 (tl_step / tl_quantize_input).
 *
 * Bidirectional window models (docs/model-blob.md) run too: tl_step keeps the window and runs the backward
 * layers at its last sample; state() gives their h and c after the forward layers'.
 */
#if !MICROPY_ENABLE_DYNRUNTIME
#include "py/binary.h"
#include "py/runtime.h"
#endif

#include "tl_blob.h"

typedef struct {
    mp_obj_base_t base;
    mp_obj_t blob;        /* the buffer the model points into */
    mp_obj_t out;         /* array('h') [output_size]: step()'s default output */
    const uint8_t *bytes; /* the blob data, or a 4-byte aligned copy of it */
    int16_t *words;       /* state buffer */
    int16_t *xq;          /* [input_size] a sample converted to the model input: a float one quantized, an
                             int16-h model's bytes decoded (int8 words in its first bytes for an int8 input) */
    int wide;             /* an int16 input (tl_input_bits: tl_step_s16), else int8 (tl_step) */
    uint8_t *hc;          /* a bidirectional model's state() bytes: h [2 * cells] int8, c [2 * cells] int16 */
    tl_model_t model;
    tl_layer_t layers[TL_BLOB_MAX_LAYERS]; /* the forward layers, then a bidirectional model's backward ones */
    tl_state_t state;
} tinylstm_model_obj_t;

/* array.array(code, bytes(nbytes)): zero-filled, created through the array module so the
 * same code works in a user C module and in a native module. */
static mp_obj_t tinylstm_new_array(qstr code, size_t nbytes)
{
    mp_obj_t n = mp_obj_new_int((mp_int_t)nbytes);
    mp_obj_t args[2] = {MP_OBJ_NEW_QSTR(code), mp_call_function_n_kw(MP_OBJ_FROM_PTR(&mp_type_bytes), 1, 0, &n)};
    mp_obj_t mod = mp_import_name(MP_QSTR_array, mp_const_none, MP_OBJ_NEW_SMALL_INT(0));
    return mp_call_function_n_kw(mp_load_attr(mod, MP_QSTR_array), 2, 0, args);
}

static mp_obj_t tinylstm_model_make_new(const mp_obj_type_t *type, size_t n_args, size_t n_kw, const mp_obj_t *args)
{
    mp_arg_check_num(n_args, n_kw, 1, 1, false);
    mp_buffer_info_t bi;
    mp_get_buffer_raise(args[0], &bi, MP_BUFFER_READ);
    tinylstm_model_obj_t *o = mp_obj_malloc(tinylstm_model_obj_t, type);
    o->blob = args[0];
    o->bytes = bi.buf;
    if ((uintptr_t)bi.buf & 3u) { /* e.g. a memoryview slice: copy once, at construction */
        uint8_t *copy = m_new(uint8_t, bi.len);
        for (size_t k = 0; k < bi.len; ++k) copy[k] = ((const uint8_t *)bi.buf)[k];
        o->bytes = copy;
    }
    tl_status_t st = tl_blob_parse(o->bytes, bi.len, &o->model, o->layers);
    if (st == TL_BLOB_ERR)
        mp_raise_ValueError(MP_ERROR_TEXT("bad model blob: malformed, truncated, corrupted or of another version; "
                                          "regenerate it with tinylstm.codegen.blob.to_blob"));
    if (st != TL_OK)
        mp_raise_ValueError(MP_ERROR_TEXT("bad model blob: the kernel rejects its model (tl_model_check); "
                                          "regenerate it with tinylstm.codegen.blob.to_blob"));
    size_t words = tl_state_words(&o->model);
    o->words = m_new(int16_t, words);
    o->wide = tl_input_bits(&o->model) == 16; /* an int16-h model's input, or an int16 input on an int8 h */
    o->xq = m_new(int16_t, o->model.input_size);
    tl_state_init(&o->state, &o->model, o->words, words);
    o->hc = o->model.backward ? m_new(uint8_t, 6u * o->model.num_layers * o->model.hidden_size) : NULL;
    o->out = tinylstm_new_array(MP_QSTR_h, 2u * o->model.output_size);
    return MP_OBJ_FROM_PTR(o);
}

/* Whether the buffer holds raw bytes (bytes, array('B'); bytearray, whose typecode is BYTEARRAY_TYPECODE). */
static int tinylstm_raw(const mp_buffer_info_t *bi)
{
    return bi->typecode == 'B' || bi->typecode == BYTEARRAY_TYPECODE;
}

/* Checks the samples `x`: the model's input words (array('b'), bytes or bytearray of int8 for an int8-input
 * model; array('h'), or bytes / bytearray of little-endian int16, for an int16-h model) or floats (array('f'));
 * `steps` samples expected, 0 = any whole number (returned). */
static void tinylstm_samples(tinylstm_model_obj_t *self, mp_obj_t x, size_t *steps, mp_buffer_info_t *bi)
{
    const size_t I = self->model.input_size;
    if (mp_obj_get_type(x) == &mp_type_str) /* its buffer would pass as raw bytes (the fallback refuses it too) */
        mp_raise_ValueError(MP_ERROR_TEXT("a str is not a sample: pass the model's input words (an array, bytes) "
                                          "or array('f') of floats"));
    mp_get_buffer_raise(x, bi, MP_BUFFER_READ);
    if (bi->typecode != 'f' && !tinylstm_raw(bi) && bi->typecode != (self->wide ? 'h' : 'b')) {
        if (self->wide)
            mp_raise_ValueError(MP_ERROR_TEXT("an int16-h model takes int16 samples: pass array('h'), bytes of "
                                              "little-endian int16 or array('f') of floats"));
        mp_raise_ValueError(
            MP_ERROR_TEXT("the model takes int8 samples: pass array('b'), bytes or array('f') of floats"));
    }
    const size_t item = bi->typecode == 'f' ? 4 : self->wide ? 2 : 1;
    size_t n = bi->len / (item * I);
    if (bi->len != n * item * I || n == 0 || (*steps && n != *steps))
        mp_raise_ValueError(MP_ERROR_TEXT("sample length does not match the model's input_size"));
    if (!tinylstm_raw(bi) && ((uintptr_t)bi->buf & (item - 1u)))
        mp_raise_ValueError(MP_ERROR_TEXT("float and int16 samples must be aligned to their size"));
    *steps = n;
}

/* Sample t of the checked samples `bi` as the kernel reads it: in place, or converted into self->xq (a float
 * sample quantized, an int16-h model's little-endian bytes decoded). */
static const void *tinylstm_sample(tinylstm_model_obj_t *self, const mp_buffer_info_t *bi, size_t t)
{
    const size_t I = self->model.input_size;
    if (bi->typecode == 'f') {
        const float *xf = (const float *)bi->buf + t * I;
        const tl_status_t st = self->wide ? tl_quantize_input_s16(&self->model, xf, self->xq)
                                          : tl_quantize_input(&self->model, xf, (int8_t *)self->xq);
        if (st != TL_OK) mp_raise_ValueError(MP_ERROR_TEXT("input sample contains NaN or infinity"));
        return self->xq;
    }
    if (self->wide && tinylstm_raw(bi)) {
        const uint8_t *b = (const uint8_t *)bi->buf + 2 * t * I;
        for (size_t k = 0; k < I; ++k) {
            const int32_t v = (int32_t)b[2 * k] | ((int32_t)b[2 * k + 1] << 8);
            self->xq[k] = (int16_t)(v > 32767 ? v - 65536 : v);
        }
        return self->xq;
    }
    return (const uint8_t *)bi->buf + t * I * (self->wide ? 2u : 1u);
}

/* One step of the kernel over a sample of tinylstm_sample: tl_step_s16 for an int16-h model, else tl_step. */
static void tinylstm_step(tinylstm_model_obj_t *self, const void *x, int16_t *y)
{
    if (self->wide)
        tl_step_s16(&self->state, (const int16_t *)x, y);
    else
        tl_step(&self->state, (const int8_t *)x, y);
}

/* `out` as the int16 words it holds, checked before the state changes: an array('h') of at least `count`
 * values, else ValueError, as the fallback (tinylstm_mpy.py) refuses it. An array is an object of the type of the
 * model's own array('h'): a list, bytes, a bytearray or a memoryview is refused with a ValueError too, not with
 * mp_get_buffer_raise's TypeError. */
static int16_t *tinylstm_outputs(const tinylstm_model_obj_t *self, mp_obj_t out, size_t count)
{
    if (mp_obj_get_type(out) != mp_obj_get_type(self->out))
        mp_raise_ValueError(MP_ERROR_TEXT("out must be an array('h') of at least output_size values "
                                          "(run: T * output_size)"));
    mp_buffer_info_t bi;
    mp_get_buffer_raise(out, &bi, MP_BUFFER_WRITE);
    if (bi.typecode != 'h' || bi.len < 2 * count || ((uintptr_t)bi.buf & 1u))
        mp_raise_ValueError(MP_ERROR_TEXT("out must be an array('h') of at least output_size values "
                                          "(run: T * output_size)"));
    return (int16_t *)bi.buf;
}

/* step(x[, out]) -> out (or, without out or with None, the model's own array('h'), overwritten by the next
 * step) */
static mp_obj_t tinylstm_model_step(size_t n_args, const mp_obj_t *args)
{
    tinylstm_model_obj_t *self = MP_OBJ_TO_PTR(args[0]);
    mp_buffer_info_t bi;
    size_t one = 1;
    tinylstm_samples(self, args[1], &one, &bi);
    mp_obj_t out = n_args > 2 && args[2] != mp_const_none ? args[2] : self->out;
    int16_t *y = tinylstm_outputs(self, out, self->model.output_size);
    tinylstm_step(self, tinylstm_sample(self, &bi, 0), y);
    return out;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(tinylstm_model_step_obj, 2, 3, tinylstm_model_step);

/* run(seq[, out]) -> array('h') [steps * output_size]; continues the state */
static mp_obj_t tinylstm_model_run(size_t n_args, const mp_obj_t *args)
{
    tinylstm_model_obj_t *self = MP_OBJ_TO_PTR(args[0]);
    mp_buffer_info_t bi;
    size_t steps = 0;
    tinylstm_samples(self, args[1], &steps, &bi);
    const size_t O = self->model.output_size;
    mp_obj_t out = n_args > 2 && args[2] != mp_const_none ? args[2] : tinylstm_new_array(MP_QSTR_h, 2 * O * steps);
    int16_t *y = tinylstm_outputs(self, out, O * steps);
    for (size_t t = 0; t < steps; ++t) tinylstm_step(self, tinylstm_sample(self, &bi, t), y + t * O);
    return out;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(tinylstm_model_run_obj, 2, 3, tinylstm_model_run);

static mp_obj_t tinylstm_model_reset(mp_obj_t self_in)
{
    tinylstm_model_obj_t *self = MP_OBJ_TO_PTR(self_in);
    tl_reset(&self->state);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(tinylstm_model_reset_obj, tinylstm_model_reset);

/* state() -> (h, c): raw little-endian bytes, [layers * hidden] each: h int8 (int16 for an int16-h
 * model: tl_state_init points h16 into the buffer, h is NULL), c int16; a bidirectional model's
 * [2 * layers * hidden], the backward layers' after the forward ones' */
static mp_obj_t tinylstm_model_state(mp_obj_t self_in)
{
    tinylstm_model_obj_t *self = MP_OBJ_TO_PTR(self_in);
    const size_t cells = (size_t)self->model.num_layers * self->model.hidden_size;
    const tl_state_t *s = &self->state;
    if (self->hc && s->hb) { /* the two directions' words are apart in the state buffer: gather them */
        uint8_t *h = self->hc, *c = self->hc + 2 * cells;
        const uint8_t *cf = (const uint8_t *)s->c, *cb = (const uint8_t *)s->cb;
        for (size_t k = 0; k < cells; ++k) {
            h[k] = (uint8_t)s->h[k];
            h[cells + k] = (uint8_t)s->hb[k];
        }
        for (size_t k = 0; k < 2 * cells; ++k) {
            c[k] = cf[k];
            c[2 * cells + k] = cb[k];
        }
        mp_obj_t both[2] = {mp_obj_new_bytes(h, 2 * cells), mp_obj_new_bytes(c, 4 * cells)};
        return mp_obj_new_tuple(2, both);
    }
    mp_obj_t hc[2] = {s->h16 ? mp_obj_new_bytes((const uint8_t *)s->h16, 2 * cells)
                             : mp_obj_new_bytes((const uint8_t *)s->h, cells),
                      mp_obj_new_bytes((const uint8_t *)s->c, 2 * cells)};
    return mp_obj_new_tuple(2, hc);
}
static MP_DEFINE_CONST_FUN_OBJ_1(tinylstm_model_state_obj, tinylstm_model_state);

static void tinylstm_store(mp_obj_t dict, qstr key, mp_obj_t value)
{
    mp_obj_dict_store(dict, MP_OBJ_NEW_QSTR(key), value);
}

/* info() -> {cell, layers, input_size, hidden_size, output_size, hash, kernel_version, hidden_bits, input_bits,
 * window} */
static mp_obj_t tinylstm_model_info(mp_obj_t self_in)
{
    tinylstm_model_obj_t *self = MP_OBJ_TO_PTR(self_in);
    const tl_model_t *m = &self->model;
    mp_obj_t d = mp_obj_new_dict(10);
    static const char *const cell_names[TL_NUM_CELLS] = TL_CELL_NAMES; /* tl_contract.h; the reader checked it */
    static const uint8_t name_lengths[TL_NUM_CELLS] = TL_CELL_NAME_LENGTHS;
    tinylstm_store(d, MP_QSTR_cell, mp_obj_new_str(cell_names[m->cell], name_lengths[m->cell]));
    tinylstm_store(d, MP_QSTR_layers, mp_obj_new_int(m->num_layers));
    tinylstm_store(d, MP_QSTR_input_size, mp_obj_new_int(m->input_size));
    tinylstm_store(d, MP_QSTR_hidden_size, mp_obj_new_int(m->hidden_size));
    tinylstm_store(d, MP_QSTR_output_size, mp_obj_new_int(m->output_size));
    tinylstm_store(d, MP_QSTR_hash, mp_obj_new_int_from_uint(m->hash));
    tinylstm_store(d, MP_QSTR_kernel_version, mp_obj_new_int(TL_KERNEL_VERSION));
    /* 0 in blobs written before the header field means 8 (tl_blob_parse keeps the raw value) */
    tinylstm_store(d, MP_QSTR_hidden_bits, mp_obj_new_int(m->hidden_bits ? m->hidden_bits : TL_HIDDEN_BITS));
    /* the samples' words: 16 for an int16-h model (int16x8) or an int16 input on an int8 h, else 8 */
    tinylstm_store(d, MP_QSTR_input_bits, mp_obj_new_int((mp_int_t)tl_input_bits(m)));
    tinylstm_store(d, MP_QSTR_window, mp_obj_new_int(m->window)); /* a bidirectional model's W; 0 otherwise */
    return d;
}
static MP_DEFINE_CONST_FUN_OBJ_1(tinylstm_model_info_obj, tinylstm_model_info);

#if !MICROPY_ENABLE_DYNRUNTIME
static const mp_rom_map_elem_t tinylstm_model_locals_table[] = {
    {MP_ROM_QSTR(MP_QSTR_step), MP_ROM_PTR(&tinylstm_model_step_obj)},
    {MP_ROM_QSTR(MP_QSTR_run), MP_ROM_PTR(&tinylstm_model_run_obj)},
    {MP_ROM_QSTR(MP_QSTR_reset), MP_ROM_PTR(&tinylstm_model_reset_obj)},
    {MP_ROM_QSTR(MP_QSTR_state), MP_ROM_PTR(&tinylstm_model_state_obj)},
    {MP_ROM_QSTR(MP_QSTR_info), MP_ROM_PTR(&tinylstm_model_info_obj)},
};
static MP_DEFINE_CONST_DICT(tinylstm_model_locals, tinylstm_model_locals_table);

MP_DEFINE_CONST_OBJ_TYPE(tinylstm_model_type, MP_QSTR_Model, MP_TYPE_FLAG_NONE, make_new, tinylstm_model_make_new,
                         locals_dict, &tinylstm_model_locals);

static const mp_rom_map_elem_t tinylstm_module_table[] = {
    {MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR_tinylstm)},
    {MP_ROM_QSTR(MP_QSTR_Model), MP_ROM_PTR(&tinylstm_model_type)},
    {MP_ROM_QSTR(MP_QSTR_KERNEL_VERSION), MP_ROM_INT(TL_KERNEL_VERSION)},
};
static MP_DEFINE_CONST_DICT(tinylstm_module_globals, tinylstm_module_table);

const mp_obj_module_t tinylstm_user_cmodule = {
    .base = {&mp_type_module},
    .globals = (mp_obj_dict_t *)&tinylstm_module_globals,
};

MP_REGISTER_MODULE(MP_QSTR_tinylstm, tinylstm_user_cmodule);
#endif
