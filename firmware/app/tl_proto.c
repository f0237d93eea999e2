/* TinyLSTM serial frame protocol, wire version 3. Specification: docs/serial-protocol.md. */
#include "tl_proto.h"

#include "tl_crc32.h" /* the kernel's CRC-32 (csrc/): one C copy for the blob and the protocol */

#if TL_PROTO_MAX_PAYLOAD > 0xFFFFu
#error "TL_PROTO_MAX_PAYLOAD must fit the u16 length field"
#endif

void tl_proto_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)(v >> 8);
}

void tl_proto_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)((v >> 8) & 0xFFu);
    p[2] = (uint8_t)((v >> 16) & 0xFFu);
    p[3] = (uint8_t)(v >> 24);
}

uint16_t tl_proto_get_u16(const uint8_t *p) { return (uint16_t)((uint16_t)p[0] | (uint16_t)((uint16_t)p[1] << 8)); }

uint32_t tl_proto_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* ---- encoder --------------------------------------------------------------- */

/* Streaming COBS writer. A block's code byte is written into a slot reserved when the
 * block's first byte arrives, so data ending right after a full (0xFF) block gets no
 * extra code byte (canonical COBS, as in Cheshire & Baker). */
typedef struct {
    uint8_t *out;
    size_t cap;
    size_t n;         /* bytes produced so far (may exceed cap: then `full`) */
    size_t code_at;   /* slot of the current block's code byte */
    uint8_t code;     /* 1 + data bytes in the current block */
    uint8_t reserved; /* the current block has a slot */
    uint8_t full;
} cobs_writer_t;

static void cobs_emit(cobs_writer_t *w, uint8_t b)
{
    if (w->n < w->cap) {
        w->out[w->n] = b;
    } else {
        w->full = 1;
    }
    w->n++;
}

static void cobs_set_code(cobs_writer_t *w)
{
    if (w->code_at < w->cap) {
        w->out[w->code_at] = w->code;
    }
    w->code = 1;
    w->reserved = 0;
}

static void cobs_put(cobs_writer_t *w, uint8_t b)
{
    if (!w->reserved) {
        w->code_at = w->n;
        w->reserved = 1;
        cobs_emit(w, 0); /* placeholder, overwritten by cobs_set_code */
    }
    if (b == 0) {
        cobs_set_code(w);
        /* a zero always starts a new block, even at the end of the data */
        w->code_at = w->n;
        w->reserved = 1;
        cobs_emit(w, 0);
        return;
    }
    cobs_emit(w, b);
    w->code++;
    if (w->code == 0xFFu) {
        cobs_set_code(w);
    }
}

static void cobs_put_all(cobs_writer_t *w, const uint8_t *p, size_t len)
{
    size_t i;
    for (i = 0; i < len; i++) {
        cobs_put(w, p[i]);
    }
}

size_t tl_proto_encode(uint8_t type, uint16_t seq, const uint8_t *payload, size_t len, uint8_t *out, size_t out_cap)
{
    uint8_t hdr[TL_PROTO_HEADER_SIZE];
    uint8_t tail[TL_PROTO_CRC_SIZE];
    uint32_t crc;
    cobs_writer_t w;

    if (len > TL_PROTO_MAX_PAYLOAD || out == NULL || (len > 0 && payload == NULL)) {
        return 0;
    }
    hdr[0] = (uint8_t)TL_PROTO_MAGIC;
    hdr[1] = type;
    tl_proto_put_u16(&hdr[2], seq);
    tl_proto_put_u16(&hdr[4], (uint16_t)len);
    crc = tl_crc32(0, hdr, sizeof hdr);
    if (len > 0) {
        crc = tl_crc32(crc, payload, len);
    }
    tl_proto_put_u32(tail, crc);

    w.out = out;
    w.cap = out_cap;
    w.n = 0;
    w.code_at = 0;
    w.code = 1;
    w.reserved = 0;
    w.full = 0;
    cobs_put_all(&w, hdr, sizeof hdr);
    if (len > 0) {
        cobs_put_all(&w, payload, len);
    }
    cobs_put_all(&w, tail, sizeof tail);
    if (w.reserved) {
        cobs_set_code(&w);
    }
    cobs_emit(&w, 0);
    return w.full ? 0 : w.n;
}

/* ---- decoder --------------------------------------------------------------- */

void tl_proto_decoder_init(tl_proto_decoder_t *d)
{
    d->pos = 0;
    d->code = 0;
    d->left = 0;
    d->overflow = 0;
}

static void dec_append(tl_proto_decoder_t *d, uint8_t b)
{
    if (d->pos >= TL_PROTO_MAX_FRAME) {
        d->overflow = 1;
    } else {
        d->buf[d->pos++] = b;
    }
}

static int dec_finish(tl_proto_decoder_t *d, tl_proto_frame_t *out)
{
    uint16_t n = d->pos;
    uint16_t plen;

    if (d->overflow) {
        return TL_PROTO_DEC_TOO_LONG;
    }
    if (d->left != 0) {
        return TL_PROTO_DEC_COBS;
    }
    if (n < TL_PROTO_HEADER_SIZE + TL_PROTO_CRC_SIZE) {
        return TL_PROTO_DEC_SHORT;
    }
    if (tl_crc32(0, d->buf, (size_t)n - TL_PROTO_CRC_SIZE) != tl_proto_get_u32(&d->buf[n - TL_PROTO_CRC_SIZE])) {
        return TL_PROTO_DEC_CRC;
    }
    if (d->buf[0] != TL_PROTO_MAGIC) {
        return TL_PROTO_DEC_MAGIC;
    }
    plen = tl_proto_get_u16(&d->buf[4]);
    if ((size_t)plen + TL_PROTO_HEADER_SIZE + TL_PROTO_CRC_SIZE != (size_t)n) {
        return TL_PROTO_DEC_LENGTH;
    }
    out->type = d->buf[1];
    out->seq = tl_proto_get_u16(&d->buf[2]);
    out->len = plen;
    out->payload = &d->buf[TL_PROTO_HEADER_SIZE];
    return 1;
}

int tl_proto_decoder_push(tl_proto_decoder_t *d, uint8_t byte, tl_proto_frame_t *out)
{
    int rc;

    if (byte == 0) {
        if (d->code == 0 && !d->overflow) {
            return 0; /* empty frame: ignored */
        }
        rc = dec_finish(d, out);
        tl_proto_decoder_init(d);
        return rc;
    }
    if (d->overflow) {
        return 0; /* discard until the delimiter */
    }
    if (d->left == 0) {
        /* Code byte: the previous block, unless full or first, implied a zero. */
        if (d->code != 0 && d->code != 0xFFu) {
            dec_append(d, 0);
        }
        d->code = byte;
        d->left = (uint8_t)(byte - 1u);
    } else {
        dec_append(d, byte);
        d->left--;
    }
    return 0;
}

/* ---- payload builders ------------------------------------------------------ */

static size_t str_len_capped(const char *s, size_t cap)
{
    size_t n = 0;
    if (s == NULL) {
        return 0;
    }
    while (n < cap && s[n] != '\0') {
        n++;
    }
    return n;
}

static void put_str(uint8_t *p, const char *s, size_t n)
{
    size_t i;
    p[0] = (uint8_t)n;
    for (i = 0; i < n; i++) {
        p[1 + i] = (uint8_t)s[i];
    }
}

size_t tl_proto_hello_payload(uint8_t *buf, size_t cap, const tl_proto_hello_t *h)
{
    size_t name_len = str_len_capped(h->board_name, TL_PROTO_NAME_MAX);
    size_t n = TL_PROTO_HELLO_FIXED + name_len;
    if (buf == NULL || cap < n) {
        return 0;
    }
    tl_proto_put_u32(&buf[0], h->model_hash);
    tl_proto_put_u16(&buf[4], h->kernel_version);
    buf[6] = h->cell;
    buf[7] = h->layers;
    tl_proto_put_u16(&buf[8], h->input_size);
    tl_proto_put_u16(&buf[10], h->hidden_size);
    tl_proto_put_u16(&buf[12], h->output_size);
    buf[14] = h->hidden_bits;
    buf[15] = h->mode;
    tl_proto_put_u16(&buf[16], h->window);
    buf[18] = h->source;
    buf[19] = h->history;
    tl_proto_put_u16(&buf[20], h->rx_capacity);
    tl_proto_put_u32(&buf[22], h->next_step);
    tl_proto_put_u32(&buf[26], h->rx_freed);
    put_str(&buf[30], h->board_name, name_len);
    return n;
}

size_t tl_proto_pred_payload(uint8_t *buf, size_t cap, uint32_t step, uint32_t rx_freed, const int16_t *y, uint16_t n)
{
    size_t size = TL_PROTO_PRED_HEAD + 2u * (size_t)n;
    uint16_t i;
    if (buf == NULL || cap < size || size > TL_PROTO_MAX_PAYLOAD || (n > 0 && y == NULL)) {
        return 0;
    }
    tl_proto_put_u32(&buf[0], step);
    tl_proto_put_u32(&buf[4], rx_freed);
    tl_proto_put_u16(&buf[8], n);
    for (i = 0; i < n; i++) {
        /* int16 -> uint16 conversion is defined modulo 2^16: two's complement on the wire */
        tl_proto_put_u16(&buf[TL_PROTO_PRED_HEAD + 2u * (size_t)i], (uint16_t)y[i]);
    }
    return size;
}

size_t tl_proto_stats_payload(uint8_t *buf, size_t cap, const tl_proto_stats_t *s)
{
    if (buf == NULL || cap < TL_PROTO_STATS_SIZE) {
        return 0;
    }
    tl_proto_put_u32(&buf[0], s->steps);
    tl_proto_put_u32(&buf[4], (uint32_t)(s->cycles & 0xFFFFFFFFu));
    tl_proto_put_u32(&buf[8], (uint32_t)(s->cycles >> 32));
    tl_proto_put_u32(&buf[12], s->dropped_rx);
    tl_proto_put_u32(&buf[16], s->frames_bad);
    tl_proto_put_u32(&buf[20], s->inputs_refused);
    tl_proto_put_u32(&buf[24], s->tx_timeouts);
    tl_proto_put_u32(&buf[28], s->next_step);
    tl_proto_put_u32(&buf[32], s->rx_freed);
    return TL_PROTO_STATS_SIZE;
}

size_t tl_proto_error_payload(uint8_t *buf, size_t cap, uint16_t code, uint32_t rx_freed, uint8_t frame_type,
                              uint32_t exception, uint32_t pc)
{
    if (buf == NULL || cap < TL_PROTO_ERROR_SIZE) {
        return 0;
    }
    tl_proto_put_u16(&buf[0], code);
    tl_proto_put_u32(&buf[2], rx_freed);
    buf[6] = frame_type;
    tl_proto_put_u32(&buf[7], exception);
    tl_proto_put_u32(&buf[11], pc);
    return TL_PROTO_ERROR_SIZE;
}

size_t tl_proto_ack_payload(uint8_t *buf, size_t cap, uint8_t acked_type, uint16_t acked_seq, uint32_t next_step,
                            uint32_t rx_freed)
{
    if (buf == NULL || cap < TL_PROTO_ACK_SIZE) {
        return 0;
    }
    buf[0] = acked_type;
    tl_proto_put_u16(&buf[1], acked_seq);
    tl_proto_put_u32(&buf[3], next_step);
    tl_proto_put_u32(&buf[7], rx_freed);
    return TL_PROTO_ACK_SIZE;
}

size_t tl_proto_nak_payload(uint8_t *buf, size_t cap, uint8_t reason, uint16_t seq, uint32_t step, uint32_t next_step,
                            uint32_t rx_freed)
{
    if (buf == NULL || cap < TL_PROTO_NAK_SIZE) {
        return 0;
    }
    buf[0] = reason;
    tl_proto_put_u16(&buf[1], seq);
    tl_proto_put_u32(&buf[3], step);
    tl_proto_put_u32(&buf[7], next_step);
    tl_proto_put_u32(&buf[11], rx_freed);
    return TL_PROTO_NAK_SIZE;
}

/* ---- payload parsers ------------------------------------------------------- */

/* Shared head of INPUT, INPUT_S16 and INPUT_F32: step u32, count u8 >= 1, count * input_size values of
 * `width` bytes. */
static int input_head(const uint8_t *payload, size_t len, uint16_t input_size, size_t width, uint32_t *step, uint8_t *n)
{
    if (payload == NULL || len < TL_PROTO_INPUT_HEAD || payload[4] == 0u) {
        return TL_PROTO_ERR_PAYLOAD;
    }
    if (input_size == 0u || len - TL_PROTO_INPUT_HEAD != (size_t)payload[4] * (size_t)input_size * width) {
        return TL_PROTO_ERR_SIZE;
    }
    *step = tl_proto_get_u32(payload);
    *n = payload[4];
    return TL_PROTO_OK;
}

int tl_proto_input_parse(const uint8_t *payload, size_t len, uint16_t input_size, uint32_t *step, uint8_t *n,
                         const int8_t **x)
{
    int rc = input_head(payload, len, input_size, 1u, step, n);
    if (rc == TL_PROTO_OK) {
        /* int8_t is a character type: reading the received bytes through it is allowed */
        *x = (const int8_t *)(const void *)&payload[TL_PROTO_INPUT_HEAD];
    }
    return rc;
}

int tl_proto_input_s16_parse(const uint8_t *payload, size_t len, uint16_t input_size, uint32_t *step, uint8_t *n)
{
    return input_head(payload, len, input_size, 2u, step, n);
}

void tl_proto_input_s16_sample(const uint8_t *payload, uint8_t k, uint16_t input_size, int16_t *x)
{
    const uint8_t *p = &payload[TL_PROTO_INPUT_HEAD + 2u * (size_t)k * (size_t)input_size];
    uint16_t i;
    for (i = 0; i < input_size; i++) {
        /* two's complement on the wire: the value is u - 2^16 for u >= 2^15 (no implementation-defined cast) */
        uint16_t u = tl_proto_get_u16(&p[2u * (size_t)i]);
        x[i] = u < 0x8000u ? (int16_t)u : (int16_t)(-(int16_t)(0xFFFFu - u) - 1);
    }
}

int tl_proto_input_f32_parse(const uint8_t *payload, size_t len, uint16_t input_size, uint32_t *step, uint8_t *n)
{
    return input_head(payload, len, input_size, 4u, step, n);
}

void tl_proto_input_f32_sample(const uint8_t *payload, uint8_t k, uint16_t input_size, float *x)
{
    const uint8_t *p = &payload[TL_PROTO_INPUT_HEAD + 4u * (size_t)k * (size_t)input_size];
    uint16_t i;
    union {
        uint32_t u;
        float f;
    } pun;
    for (i = 0; i < input_size; i++) {
        pun.u = tl_proto_get_u32(&p[4u * (size_t)i]);
        x[i] = pun.f;
    }
}

int tl_proto_step_parse(const uint8_t *payload, size_t len, uint32_t *step)
{
    if (payload == NULL || len != 4u) {
        return TL_PROTO_ERR_PAYLOAD;
    }
    *step = tl_proto_get_u32(payload);
    return TL_PROTO_OK;
}

int tl_proto_set_source_parse(const uint8_t *payload, size_t len, uint8_t *source)
{
    if (payload == NULL || len != 1u || payload[0] > TL_PROTO_SOURCE_SENSOR) {
        return TL_PROTO_ERR_PAYLOAD;
    }
    *source = payload[0];
    return TL_PROTO_OK;
}
