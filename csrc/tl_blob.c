/*
 * .tlm blob reader (docs/model-blob.md). Header fields are read byte by byte; the arrays are
 * used in place, which needs a little-endian target and a 4-byte aligned blob (both checked).
 */
#include "tl_blob.h"

#include "tl_crc32.h"
#include "tl_kernels.h"

#define GLOBAL_SECTIONS 8u
#define LAYER_SECTIONS 6u
#define BIDIR_SECTION_SIZE 8u /* u16 window, i8 cell_frac[3] of the backward layers, 3 reserved zero bytes */
#define ENTRY_SIZE 8u
#define CRC_START 12u

static uint32_t rd16(const uint8_t *p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 8); }

static uint32_t rd32(const uint8_t *p) { return rd16(p) | (rd16(p + 2) << 16); }

static int little_endian(void)
{
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

/* Every int32 bias in [-TL_BIAS_LIMIT, TL_BIAS_LIMIT]: the bound that keeps the kernel's int32 accumulator from
 * overflowing. */
static int biases_ok(const uint8_t *p, size_t n)
{
    for (size_t k = 0; k < n; ++k)
        if ((uint32_t)(rd32(p + 4 * k) + (uint32_t)TL_BIAS_LIMIT) > 2u * (uint32_t)TL_BIAS_LIMIT) return 0;
    return 1;
}

/* Every float finite (exponent bits not all ones): NaN normalisation constants would poison tl_quantize_input. */
static int floats_ok(const uint8_t *p, size_t n)
{
    for (size_t k = 0; k < n; ++k)
        if ((rd32(p + 4 * k) & 0x7F800000u) == 0x7F800000u) return 0;
    return 1;
}

/* The tanh table saturated outside entries TL_TABLE_LO..TL_TABLE_HI, as the contract's is: the kernel reads only
 * those entries (tl_qmath.h, tl_tanh_q15), which is exact for such a table alone. */
static int tanh_table_ok(const uint8_t *p)
{
    for (size_t k = 0; k < TL_TABLE_SIZE; ++k)
        if ((k <= TL_TABLE_LO && rd16(p + 2 * k) != 0x8000u) || (k >= TL_TABLE_HI && rd16(p + 2 * k) != 0x7FFFu))
            return 0;
    return 1;
}

/* Section `k` of the table: its start, if it has exactly `size` bytes and lies aligned inside the blob. */
static const uint8_t *section(const uint8_t *blob, uint32_t total, uint32_t table_end, size_t k, size_t size)
{
    const uint8_t *e = blob + TL_BLOB_HEADER_SIZE + k * ENTRY_SIZE;
    const uint32_t off = rd32(e), got = rd32(e + 4);
    if (got != size || (off & 3u) || off < table_end || off > total || got > total - off) return NULL;
    return blob + off;
}

tl_status_t tl_blob_parse(const uint8_t *blob, size_t len, tl_model_t *model, tl_layer_t *layers)
{
    if (!blob || !model || !layers) return TL_ERR_ARG;
    if (!little_endian() || ((uintptr_t)blob & 3u) || len < TL_BLOB_HEADER_SIZE) return TL_BLOB_ERR;
    for (size_t k = 0; k < 4; ++k)
        if (blob[k] != (uint8_t)TL_BLOB_MAGIC[k]) return TL_BLOB_ERR;
    if (rd16(blob + 4) != TL_BLOB_FORMAT_VERSION || rd16(blob + 6) != TL_KERNEL_VERSION) return TL_BLOB_ERR;
    const uint32_t total = rd32(blob + 12);
    if (total < TL_BLOB_HEADER_SIZE || total > len) return TL_BLOB_ERR;
    if (tl_crc32(0, blob + CRC_START, total - CRC_START) != rd32(blob + 8)) return TL_BLOB_ERR;
    const tl_cell_t *cell = tl_cell(blob[20]);
    const uint32_t nl = blob[21], nsec = rd16(blob + 22);
    const size_t I = rd16(blob + 24), H = rd16(blob + 26), O = rd16(blob + 28);
    if (!cell || nl < 1 || nl > TL_MAX_LAYERS) return TL_BLOB_ERR;
    if (I < 1 || I > TL_MAX_INPUT || H < 1 || H > TL_MAX_HIDDEN || O < 1) return TL_BLOB_ERR;
    /* 8 + 6L sections; a bidirectional model's 9 + 12L: its backward layers' and its window section follow */
    const int bidir = nsec == GLOBAL_SECTIONS + 2u * LAYER_SECTIONS * nl + 1u;
    if ((!bidir && nsec != GLOBAL_SECTIONS + LAYER_SECTIONS * nl) || rd32(blob + 36) != TL_BLOB_HEADER_SIZE)
        return TL_BLOB_ERR;
    const uint32_t table_end = TL_BLOB_HEADER_SIZE + ENTRY_SIZE * nsec;
    if (table_end > total) return TL_BLOB_ERR;
    /* 8 or 16 (0 in blobs written before the field: 8), with TL_BLOB_INPUT16_FLAG for an int16 input; checked below */
    const uint8_t hidden_bits = (uint8_t)(blob[30] & ~TL_BLOB_INPUT16_FLAG);
    const uint8_t input_bits = blob[30] & TL_BLOB_INPUT16_FLAG ? TL_INPUT16_BITS : 0;
    if (input_bits && hidden_bits != TL_HIDDEN_BITS) return TL_BLOB_ERR; /* the flag is for an int8 h only */
    const uint8_t readout = blob[31]; /* TL_READOUT_*; 0 (last) in blobs written before the field */
    const uint8_t stack = blob[35];   /* samples per step; 0 (= 1) in blobs written before the field */
    const size_t K = stack > 1 ? stack : 1;
    if (I * K > TL_MAX_INPUT) return TL_BLOB_ERR;
    const size_t G = cell->gates;

    const uint8_t *p[GLOBAL_SECTIONS - 1];
    const size_t gsize[GLOBAL_SECTIONS - 1] = {
        2 * TL_TABLE_SIZE, 4 * I, 4 * I, O * H * (bidir ? 2u : 1u), 4 * O, 4 * O, O};
    for (size_t k = 0; k < GLOBAL_SECTIONS - 1; ++k)
        if (!(p[k] = section(blob, total, table_end, k, gsize[k]))) return TL_BLOB_ERR;
    if (!biases_ok(p[4], O) || !floats_ok(p[1], I) || !floats_ok(p[2], I) || !tanh_table_ok(p[0])) return TL_BLOB_ERR;
    /* Section 7 is the metadata JSON: any size, but it must lie inside the blob too. */
    const uint8_t *e = blob + TL_BLOB_HEADER_SIZE + (GLOBAL_SECTIONS - 1) * ENTRY_SIZE;
    if (!section(blob, total, table_end, GLOBAL_SECTIONS - 1, rd32(e + 4))) return TL_BLOB_ERR;

    /* The window section: a window of at least one step; unused cell_frac entries and reserved bytes zero. */
    const uint8_t *win = NULL;
    uint32_t window = 0;
    if (bidir) {
        if (!(win = section(blob, total, table_end, nsec - 1u, BIDIR_SECTION_SIZE))) return TL_BLOB_ERR;
        window = rd16(win);
        if (window < K) return TL_BLOB_ERR;
        for (size_t k = 2 + nl; k < BIDIR_SECTION_SIZE; ++k)
            if (win[k]) return TL_BLOB_ERR;
    }

    /* Layers 0..L-1 forward, then (bidirectional) L..2L-1 the backward ones, shaped alike. */
    for (size_t n = 0; n < (bidir ? 2u : 1u) * nl; ++n) {
        const size_t d = n % nl; /* the layer's place in its direction's stack */
        const size_t W = (d == 0 ? I * K : H) + H, base = GLOBAL_SECTIONS + LAYER_SECTIONS * n;
        const size_t lsize[LAYER_SECTIONS] = {G * H * W, 4 * G * H, cell->bias_hn ? 4 * H : 0, 4 * G * H, G * H, G * H};
        const uint8_t *q[LAYER_SECTIONS];
        for (size_t k = 0; k < LAYER_SECTIONS; ++k)
            if (!(q[k] = section(blob, total, table_end, base + k, lsize[k]))) return TL_BLOB_ERR;
        if (!biases_ok(q[1], G * H) || !biases_ok(q[2], lsize[2] / 4)) return TL_BLOB_ERR;
        tl_layer_t *L = &layers[n];
        L->input_size = (uint16_t)(W - H);
        L->hidden_size = (uint16_t)H;
        L->weights = (const int8_t *)q[0];
        L->bias = (const int32_t *)(const void *)q[1];
        L->bias_hn = cell->bias_hn ? (const int32_t *)(const void *)q[2] : NULL;
        L->mult = (const int32_t *)(const void *)q[3];
        L->shift = (const int8_t *)q[4];
        L->cell_frac = (int8_t)(n < nl ? blob[32 + d] : win[2 + d]);
        L->scale_exp = (const int8_t *)q[5];
        L->weights16 = NULL; /* blobs are int8 only; callers' layer arrays may be uninitialised */
    }
    model->hash = rd32(blob + 16);
    model->cell = blob[20];
    model->num_layers = (uint8_t)nl;
    model->hidden_bits = hidden_bits;
    model->input_bits = input_bits;
    model->readout = readout;
    model->stack = stack;
    model->input_size = (uint16_t)I;
    model->hidden_size = (uint16_t)H;
    model->output_size = (uint16_t)O;
    model->layers = layers;
    model->backward = bidir ? layers + nl : NULL;
    model->window = (uint16_t)window;
    model->act_table = (const int16_t *)(const void *)p[0] + TL_TABLE_LO; /* the entries the kernel reads */
    model->input_mean = (const float *)(const void *)p[1];
    model->input_mul = (const float *)(const void *)p[2];
    model->head_weights = (const int8_t *)p[3];
    model->head_bias = (const int32_t *)(const void *)p[4];
    model->head_mult = (const int32_t *)(const void *)p[5];
    model->head_shift = (const int8_t *)p[6];
    return tl_model_check(model) == TL_OK ? TL_OK : TL_ERR_MODEL;
}
