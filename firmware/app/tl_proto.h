/*
 * TinyLSTM serial frame protocol (firmware side).
 *
 * Specification: docs/serial-protocol.md. The host implementation is
 * tinylstm.host.protocol; both are checked against tests/vectors/protocol_vectors.json.
 *
 * Wire format: COBS(header | payload | crc32) 0x00
 *   header  = magic u8 (0xA5) | type u8 | seq u16 LE | payload length u16 LE
 *   crc32   = CRC-32/ISO-HDLC (zlib) over header and payload, u32 LE
 *
 * C99, no malloc, no libc calls, reentrant (all state lives in caller-owned structs).
 */
#ifndef TL_PROTO_H
#define TL_PROTO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Protocol magic, first byte of every decoded frame. A new wire version gets a new magic. */
#define TL_PROTO_MAGIC 0xA5u
/** Header bytes: magic, type, seq (2), payload length (2). */
#define TL_PROTO_HEADER_SIZE 6u
/** Trailer bytes: CRC-32, little-endian. */
#define TL_PROTO_CRC_SIZE 4u
/** Largest payload on the wire. Part of the protocol: the host uses the same limit. */
#define TL_PROTO_MAX_PAYLOAD 512u
/** Largest decoded frame (header + payload + CRC). */
#define TL_PROTO_MAX_FRAME (TL_PROTO_HEADER_SIZE + TL_PROTO_MAX_PAYLOAD + TL_PROTO_CRC_SIZE)
/** Largest encoded frame: COBS overhead (one code byte per 254 data bytes, plus one) and the 0x00. */
#define TL_PROTO_MAX_ENCODED(n) ((n) + (n) / 254u + 2u)
/** Buffer size that holds any encoded frame. */
#define TL_PROTO_MAX_ENCODED_FRAME TL_PROTO_MAX_ENCODED(TL_PROTO_MAX_FRAME)
/** Longest board name in HELLO, bytes. */
#define TL_PROTO_NAME_MAX 32u
/** Longest message in ERROR, bytes. */
#define TL_PROTO_MSG_MAX 64u

/** Frame types. Bit 7 set: host to board. */
enum {
    TL_MSG_HELLO = 0x01,      /**< board -> host: model identity and shape */
    TL_MSG_PRED = 0x02,       /**< board -> host: raw int16 outputs of one step */
    TL_MSG_STATS = 0x03,      /**< board -> host: counters */
    TL_MSG_ERROR = 0x04,      /**< board -> host: error code and message */
    TL_MSG_ACK = 0x05,        /**< board -> host: a host command was applied */
    TL_MSG_HELLO_REQ = 0x81,  /**< host -> board: send HELLO */
    TL_MSG_INPUT = 0x82,      /**< host -> board: one int8 input sample */
    TL_MSG_INPUT_F32 = 0x83,  /**< host -> board: one float32 input sample */
    TL_MSG_RESET = 0x84,      /**< host -> board: reset the recurrent state */
    TL_MSG_SET_SOURCE = 0x85, /**< host -> board: choose the input source */
    TL_MSG_STATS_REQ = 0x86   /**< host -> board: send STATS */
};

/** Return codes of tl_proto_decoder_push() for a rejected frame. */
enum {
    TL_PROTO_ERR_COBS = -1,    /**< a COBS block was cut short by the delimiter */
    TL_PROTO_ERR_TOO_LONG = -2, /**< decoded frame longer than TL_PROTO_MAX_FRAME */
    TL_PROTO_ERR_SHORT = -3,   /**< decoded frame shorter than header + CRC */
    TL_PROTO_ERR_CRC = -4,     /**< CRC mismatch */
    TL_PROTO_ERR_MAGIC = -5,   /**< CRC fine, but first byte is not TL_PROTO_MAGIC */
    TL_PROTO_ERR_LENGTH = -6   /**< CRC fine, but the length field disagrees with the frame size */
};

/** Return codes of the payload parsers. */
enum {
    TL_PROTO_OK = 0,
    TL_PROTO_ERR_PAYLOAD = -10, /**< payload size or content does not match its type */
    TL_PROTO_ERR_CAPACITY = -11 /**< caller's buffer is too small */
};

/** Values of HELLO.cell, HELLO.mode and HELLO.source / SET_SOURCE.source. */
enum { TL_PROTO_CELL_LSTM = 0, TL_PROTO_CELL_GRU = 1 }; /* same values as tinylstm.h's TL_CELL_* */
enum { TL_PROTO_MODE_WINDOW = 0, TL_PROTO_MODE_STREAM = 1 };
enum { TL_SOURCE_HOST = 0, TL_SOURCE_REPLAY = 1, TL_SOURCE_SENSOR = 2 };

/** Codes carried by ERROR frames (application level). */
enum {
    TL_ERR_BAD_FRAME = 1,    /**< a received frame failed to decode */
    TL_ERR_UNKNOWN_TYPE = 2, /**< frame type not handled by this firmware */
    TL_ERR_BAD_PAYLOAD = 3,  /**< payload malformed for its type */
    TL_ERR_INPUT_SIZE = 4,   /**< INPUT count differs from the model's input size */
    TL_ERR_UNSUPPORTED = 5,  /**< request valid but not available on this build */
    TL_ERR_OVERRUN = 6,      /**< receive buffer overrun, bytes were lost */
    TL_ERR_INTERNAL = 7      /**< anything else */
};

/** A decoded frame. payload points into the decoder's buffer: valid until the next push. */
typedef struct {
    uint8_t type;
    uint16_t seq;
    uint16_t len;
    const uint8_t *payload;
} tl_proto_frame_t;

/** Byte-at-a-time frame decoder. Treat as opaque; initialise with tl_proto_decoder_init(). */
typedef struct {
    uint8_t buf[TL_PROTO_MAX_FRAME];
    uint16_t pos;     /* decoded bytes so far */
    uint8_t code;     /* current COBS code byte, 0 = no block started */
    uint8_t left;     /* data bytes still expected in the current block */
    uint8_t overflow; /* frame exceeded TL_PROTO_MAX_FRAME; wait for 0x00 */
} tl_proto_decoder_t;

/** HELLO payload fields (see docs/serial-protocol.md). */
typedef struct {
    uint32_t model_hash;
    uint16_t kernel_version;
    uint8_t cell;   /**< TL_PROTO_CELL_* */
    uint8_t layers;
    uint16_t input_size;
    uint16_t hidden_size;
    uint16_t output_size;
    uint8_t mode;   /**< TL_PROTO_MODE_* */
    uint16_t window;
    uint8_t source; /**< TL_SOURCE_* */
    const char *board_name; /**< NUL-terminated; truncated to TL_PROTO_NAME_MAX bytes; may be NULL */
} tl_proto_hello_t;

/* ---- little-endian helpers ------------------------------------------------ */

/** Store v at p[0..1], little-endian. */
void tl_put_u16(uint8_t *p, uint16_t v);
/** Store v at p[0..3], little-endian. */
void tl_put_u32(uint8_t *p, uint32_t v);
/** Store v at p[0..1], two's complement little-endian. */
void tl_put_i16(uint8_t *p, int16_t v);
/** Load a little-endian uint16 from p[0..1]. */
uint16_t tl_get_u16(const uint8_t *p);
/** Load a little-endian uint32 from p[0..3]. */
uint32_t tl_get_u32(const uint8_t *p);
/** Load a two's complement little-endian int16 from p[0..1]. */
int16_t tl_get_i16(const uint8_t *p);

/* ---- framing -------------------------------------------------------------- */

/**
 * @brief         CRC-32/ISO-HDLC (zlib crc32), nibble table (64 bytes of flash).
 * @param[in]     crc   previous value; 0 to start
 * @param[in]     data  bytes
 * @param[in]     len   number of bytes
 * @return        updated CRC; chainable: crc32(crc32(0,a),b) == crc32(0,a|b)
 */
uint32_t tl_proto_crc32(uint32_t crc, const uint8_t *data, size_t len);

/**
 * @brief         Build one complete wire frame: COBS(header|payload|crc) followed by 0x00.
 * @param[in]     type     frame type (TL_MSG_*)
 * @param[in]     seq      sender's sequence number
 * @param[in]     payload  payload bytes (may be NULL when len is 0)
 * @param[in]     len      payload length, at most TL_PROTO_MAX_PAYLOAD
 * @param[out]    out      output buffer
 * @param[in]     out_cap  its size; TL_PROTO_MAX_ENCODED(len + 10) always suffices
 * @return        encoded size including the 0x00 delimiter, or 0 if len is too large or out too small
 */
size_t tl_proto_encode(uint8_t type, uint16_t seq, const uint8_t *payload, size_t len,
                       uint8_t *out, size_t out_cap);

/**
 * @brief         Reset a decoder to wait for the first byte of a frame.
 * @param[out]    d  decoder
 */
void tl_proto_decoder_init(tl_proto_decoder_t *d);

/**
 * @brief         Feed one received byte.
 * @param[in,out] d     decoder
 * @param[in]     byte  received byte
 * @param[out]    out   filled when 1 is returned; payload points into d
 * @return        1: a valid frame is in *out.
 *                0: need more bytes (also for an empty frame, i.e. repeated 0x00).
 *                TL_PROTO_ERR_*: the frame that this 0x00 ended is bad; it is dropped and the
 *                decoder is already waiting for the next frame. Errors are reported only at
 *                the 0x00, exactly once per bad frame.
 */
int tl_proto_decoder_push(tl_proto_decoder_t *d, uint8_t byte, tl_proto_frame_t *out);

/* ---- payload builders (board -> host) ------------------------------------- */
/* Each returns the payload size written to buf, or 0 if cap is too small / arguments invalid. */

/**
 * @brief         HELLO payload: 19 bytes + board name.
 * @param[out]    buf  destination
 * @param[in]     cap  size of buf
 * @param[in]     h    fields
 * @return        payload size, 0 if it does not fit
 */
size_t tl_proto_hello_payload(uint8_t *buf, size_t cap, const tl_proto_hello_t *h);

/**
 * @brief         PRED payload: step u32, count u16, count x int16.
 * @param[out]    buf   destination
 * @param[in]     cap   size of buf
 * @param[in]     step  step index (number of samples consumed before this output)
 * @param[in]     y     raw int16 model outputs (may be NULL when n is 0)
 * @param[in]     n     number of outputs
 * @return        payload size (6 + 2n), 0 if it does not fit or exceeds TL_PROTO_MAX_PAYLOAD
 */
size_t tl_proto_pred_payload(uint8_t *buf, size_t cap, uint32_t step, const int16_t *y, uint16_t n);

/**
 * @brief         STATS payload: four u32 counters (16 bytes).
 * @param[out]    buf             destination
 * @param[in]     cap             size of buf
 * @param[in]     steps           model steps run since boot
 * @param[in]     cycles_per_step average cycles per step, 0 if unknown
 * @param[in]     dropped_rx      received bytes lost (UART overrun, full buffer)
 * @param[in]     frames_bad      received frames rejected by the decoder
 * @return        16, or 0 if cap is too small
 */
size_t tl_proto_stats_payload(uint8_t *buf, size_t cap, uint32_t steps, uint32_t cycles_per_step,
                              uint32_t dropped_rx, uint32_t frames_bad);

/**
 * @brief         ERROR payload: code u16, message length u8, message bytes.
 * @param[out]    buf   destination
 * @param[in]     cap   size of buf
 * @param[in]     code  TL_ERR_*
 * @param[in]     msg   NUL-terminated message, truncated to TL_PROTO_MSG_MAX bytes; may be NULL
 * @return        payload size, 0 if it does not fit
 */
size_t tl_proto_error_payload(uint8_t *buf, size_t cap, uint16_t code, const char *msg);

/**
 * @brief         ACK payload: acknowledged type u8, acknowledged seq u16 (3 bytes).
 * @param[out]    buf         destination
 * @param[in]     cap         size of buf
 * @param[in]     acked_type  type of the host frame that was applied
 * @param[in]     acked_seq   its sequence number
 * @return        3, or 0 if cap is too small
 */
size_t tl_proto_ack_payload(uint8_t *buf, size_t cap, uint8_t acked_type, uint16_t acked_seq);

/* ---- payload parsers (host -> board) -------------------------------------- */

/**
 * @brief         Parse an INPUT payload (count u16, count x int8).
 * @param[in]     payload  frame payload
 * @param[in]     len      payload length
 * @param[out]    x        destination for the samples
 * @param[in]     cap      capacity of x
 * @param[out]    n        number of samples written
 * @return        TL_PROTO_OK, TL_PROTO_ERR_PAYLOAD (size mismatch) or TL_PROTO_ERR_CAPACITY
 */
int tl_proto_input_parse(const uint8_t *payload, size_t len, int8_t *x, uint16_t cap, uint16_t *n);

/**
 * @brief         Parse an INPUT_F32 payload (count u16, count x IEEE-754 float32 LE).
 * @param[in]     payload  frame payload
 * @param[in]     len      payload length
 * @param[out]    x        destination for the samples
 * @param[in]     cap      capacity of x
 * @param[out]    n        number of samples written
 * @return        TL_PROTO_OK, TL_PROTO_ERR_PAYLOAD or TL_PROTO_ERR_CAPACITY
 */
int tl_proto_input_f32_parse(const uint8_t *payload, size_t len, float *x, uint16_t cap, uint16_t *n);

/**
 * @brief         Parse a SET_SOURCE payload (source u8).
 * @param[in]     payload  frame payload
 * @param[in]     len      payload length
 * @param[out]    source   TL_SOURCE_*
 * @return        TL_PROTO_OK or TL_PROTO_ERR_PAYLOAD (wrong size or unknown source)
 */
int tl_proto_set_source_parse(const uint8_t *payload, size_t len, uint8_t *source);

#ifdef __cplusplus
}
#endif

#endif /* TL_PROTO_H */
