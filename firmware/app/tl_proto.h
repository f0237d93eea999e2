/*
 * TinyLSTM serial frame protocol, wire version 3 (firmware side).
 *
 * Specification: docs/serial-protocol.md. The host implementation is
 * tinylstm.host.link.protocol; both are checked against tests/vectors/protocol_vectors.json.
 *
 * Wire format: COBS(header | payload | crc32) 0x00
 *   header  = magic u8 (0xA7) | type u8 | seq u16 LE | payload length u16 LE
 *   crc32   = CRC-32/ISO-HDLC (zlib) over header and payload, u32 LE: tl_crc32 (csrc/tl_crc32.h)
 *
 * Naming: every identifier of this file starts with tl_proto_ / TL_PROTO_.
 * C99, no malloc, no libc calls, reentrant (all state lives in caller-owned structs).
 */
#ifndef TL_PROTO_H
#define TL_PROTO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Wire version carried by the magic byte. A new wire version gets a new magic. */
#define TL_PROTO_VERSION 3u
/** Protocol magic, first byte of every decoded frame (0xA5 was version 1, 0xA6 version 2). */
#define TL_PROTO_MAGIC 0xA7u
/** Header bytes: magic, type, seq (2), payload length (2). */
#define TL_PROTO_HEADER_SIZE 6u
/** Trailer bytes: CRC-32, little-endian. */
#define TL_PROTO_CRC_SIZE 4u
/** Largest payload on the wire. Part of the protocol: the host uses the same limit. */
#define TL_PROTO_MAX_PAYLOAD 512u
/** Largest decoded frame (header + payload + CRC). */
#define TL_PROTO_MAX_FRAME (TL_PROTO_HEADER_SIZE + TL_PROTO_MAX_PAYLOAD + TL_PROTO_CRC_SIZE)
/** Largest encoded frame of n decoded bytes: COBS overhead (one code byte per 254 data bytes,
 *  plus one) and the 0x00 delimiter. */
#define TL_PROTO_MAX_ENCODED(n) ((n) + (n) / 254u + 2u)
/** Buffer size that holds any encoded frame. */
#define TL_PROTO_MAX_ENCODED_FRAME TL_PROTO_MAX_ENCODED(TL_PROTO_MAX_FRAME)
/** Longest board name in HELLO, bytes. */
#define TL_PROTO_NAME_MAX 32u
/** Bytes before the samples of an INPUT / INPUT_S16 / INPUT_F32 payload: first step u32, sample count u8. */
#define TL_PROTO_INPUT_HEAD 5u
/** Most samples one INPUT frame may carry (the count is a u8). */
#define TL_PROTO_MAX_BATCH 255u
/** Largest model input size one INPUT frame can carry (one int8 sample). */
#define TL_PROTO_MAX_INPUT_SIZE (TL_PROTO_MAX_PAYLOAD - TL_PROTO_INPUT_HEAD)
/** Largest model input size one INPUT_S16 frame can carry (one int16 sample). */
#define TL_PROTO_MAX_INPUT_SIZE_S16 ((TL_PROTO_MAX_PAYLOAD - TL_PROTO_INPUT_HEAD) / 2u)
/** Largest model input size one INPUT_F32 frame can carry (one float32 sample). */
#define TL_PROTO_MAX_INPUT_SIZE_F32 ((TL_PROTO_MAX_PAYLOAD - TL_PROTO_INPUT_HEAD) / 4u)
/** Bytes before the outputs of a PRED payload: step u32, rx_freed u32, count u16. */
#define TL_PROTO_PRED_HEAD 10u
/** Largest model output size one PRED frame can carry. */
#define TL_PROTO_MAX_OUTPUT_SIZE ((TL_PROTO_MAX_PAYLOAD - TL_PROTO_PRED_HEAD) / 2u)

/** Frame types. Bit 7 set: host to board. */
enum {
    TL_PROTO_MSG_HELLO = 0x01,      /**< board -> host: model identity, shape, receive capacity */
    TL_PROTO_MSG_PRED = 0x02,       /**< board -> host: raw int16 outputs of one step */
    TL_PROTO_MSG_STATS = 0x03,      /**< board -> host: counters */
    TL_PROTO_MSG_ERROR = 0x04,      /**< board -> host: error code, the frame type it answers, a fault's pc */
    TL_PROTO_MSG_ACK = 0x05,        /**< board -> host: a host command was applied */
    TL_PROTO_MSG_NAK = 0x06,        /**< board -> host: an INPUT or PRED_REQ was refused */
    TL_PROTO_MSG_HELLO_REQ = 0x81,  /**< host -> board: send HELLO */
    TL_PROTO_MSG_INPUT = 0x82,      /**< host -> board: consecutive int8 input samples (int8-input models) */
    TL_PROTO_MSG_INPUT_F32 = 0x83,  /**< host -> board: consecutive float32 input samples */
    TL_PROTO_MSG_RESET = 0x84,      /**< host -> board: zero the state, expect a given step next */
    TL_PROTO_MSG_SET_SOURCE = 0x85, /**< host -> board: choose the input source */
    TL_PROTO_MSG_STATS_REQ = 0x86,  /**< host -> board: send STATS */
    TL_PROTO_MSG_PRED_REQ = 0x87,   /**< host -> board: send the PRED of a past step again */
    TL_PROTO_MSG_INPUT_S16 = 0x88   /**< host -> board: consecutive int16 input samples (int16-h models) */
};

/** Return codes of tl_proto_decoder_push() for a rejected frame. */
enum {
    TL_PROTO_DEC_COBS = -1,     /**< a COBS block was cut short by the delimiter */
    TL_PROTO_DEC_TOO_LONG = -2, /**< decoded frame longer than TL_PROTO_MAX_FRAME */
    TL_PROTO_DEC_SHORT = -3,    /**< decoded frame shorter than header + CRC */
    TL_PROTO_DEC_CRC = -4,      /**< CRC mismatch */
    TL_PROTO_DEC_MAGIC = -5,    /**< CRC fine, but first byte is not TL_PROTO_MAGIC (another wire version) */
    TL_PROTO_DEC_LENGTH = -6    /**< CRC fine, but the length field disagrees with the frame size */
};

/** Return codes of the payload parsers. */
enum {
    TL_PROTO_OK = 0,
    TL_PROTO_ERR_PAYLOAD = -10, /**< payload size or content does not match its type */
    TL_PROTO_ERR_SIZE = -12     /**< INPUT samples are not input_size values each */
};

/** Values of HELLO.mode and HELLO.source / SET_SOURCE.source (HELLO.cell carries tinylstm.h's TL_CELL_*).
 *  TL_PROTO_MODE_WINDOW_END: window mode whose answer is the PRED of each window's last step, the others the
 *  head of zeros (a bidirectional window model, TL_MODEL_BIDIRECTIONAL). */
enum { TL_PROTO_MODE_WINDOW = 0, TL_PROTO_MODE_STREAM = 1, TL_PROTO_MODE_WINDOW_END = 2 };
enum { TL_PROTO_SOURCE_HOST = 0, TL_PROTO_SOURCE_REPLAY = 1, TL_PROTO_SOURCE_SENSOR = 2 };

/** Codes carried by ERROR frames (application level). */
enum {
    TL_PROTO_ERROR_BAD_FRAME = 1,    /**< a received frame failed to decode */
    TL_PROTO_ERROR_UNKNOWN_TYPE = 2, /**< frame type not handled by this firmware */
    TL_PROTO_ERROR_BAD_PAYLOAD = 3,  /**< payload malformed for its type */
    TL_PROTO_ERROR_INPUT_SIZE = 4,   /**< INPUT samples differ from the model's input size */
    TL_PROTO_ERROR_UNSUPPORTED = 5,  /**< request valid but not available on this build */
    TL_PROTO_ERROR_OVERRUN = 6,      /**< receive buffer overrun, bytes were lost */
    TL_PROTO_ERROR_INTERNAL = 7,     /**< anything else */
    TL_PROTO_ERROR_FAULT = 8,        /**< the CPU faulted (HardFault, ...); the board resets */
    TL_PROTO_ERROR_WATCHDOG = 9,     /**< sent after HELLO: the last reset was the watchdog's */
    TL_PROTO_ERROR_NOT_FINITE = 10   /**< an INPUT_F32 or sensor sample is NaN or infinite (not run) */
};

/** Why a NAK refused a host frame. */
enum {
    TL_PROTO_NAK_GAP = 1,     /**< INPUT's step is not the step the board expects next */
    TL_PROTO_NAK_EXPIRED = 2, /**< PRED_REQ for a step whose PRED is no longer held */
    TL_PROTO_NAK_NOT_YET = 3, /**< PRED_REQ for a step the board has not run */
    TL_PROTO_NAK_SOURCE = 4   /**< INPUT while the input source is not the host */
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
    uint8_t cell; /**< TL_CELL_* (tl_contract.h) */
    uint8_t layers;
    uint16_t input_size;
    uint16_t hidden_size;
    uint16_t output_size;
    uint8_t hidden_bits; /**< bits of the hidden state words: 8 (int8 Q0.7) or 16 (int16 Q0.15), TL_MODEL_HIDDEN_BITS,
                          * | TL_BLOB_INPUT16_FLAG for an int16 input on an int8 h */
    uint8_t mode;        /**< TL_PROTO_MODE_* */
    uint16_t window;
    uint8_t source;         /**< TL_PROTO_SOURCE_* */
    uint8_t history;        /**< PRED frames the board can send again (PRED_REQ) */
    uint16_t rx_capacity;   /**< bytes the host may have in flight (credit window) */
    uint32_t next_step;     /**< step the board expects in the next INPUT */
    uint32_t rx_freed;      /**< received bytes taken or dropped since boot (mod 2^32) */
    const char *board_name; /**< NUL-terminated; truncated to TL_PROTO_NAME_MAX bytes; may be NULL */
} tl_proto_hello_t;

/** STATS payload fields. */
typedef struct {
    uint32_t steps;          /**< model steps run since boot */
    uint64_t cycles;         /**< CPU cycles spent in those steps, 0 without a cycle counter */
    uint32_t dropped_rx;     /**< received bytes lost (UART overrun, full buffer) */
    uint32_t frames_bad;     /**< received frames the decoder rejected */
    uint32_t inputs_refused; /**< NAK frames sent */
    uint32_t tx_timeouts;    /**< frames the UART did not take in time (partly sent) */
    uint32_t next_step;      /**< step the board expects in the next INPUT */
    uint32_t rx_freed;       /**< received bytes taken or dropped since boot (mod 2^32) */
} tl_proto_stats_t;

/** Size of a HELLO payload without the board name. */
#define TL_PROTO_HELLO_FIXED 31u
/** Size of a STATS payload. */
#define TL_PROTO_STATS_SIZE 36u
/** Size of an ACK payload. */
#define TL_PROTO_ACK_SIZE 11u
/** Size of a NAK payload. */
#define TL_PROTO_NAK_SIZE 15u
/** Size of an ERROR payload. */
#define TL_PROTO_ERROR_SIZE 15u

/* ---- little-endian helpers ------------------------------------------------ */

/** Store v at p[0..1], little-endian. */
void tl_proto_put_u16(uint8_t *p, uint16_t v);
/** Store v at p[0..3], little-endian. */
void tl_proto_put_u32(uint8_t *p, uint32_t v);
/** Load a little-endian uint16 from p[0..1]. */
uint16_t tl_proto_get_u16(const uint8_t *p);
/** Load a little-endian uint32 from p[0..3]. */
uint32_t tl_proto_get_u32(const uint8_t *p);

/* ---- framing -------------------------------------------------------------- */

/**
 * @brief         Build one complete wire frame: COBS(header|payload|crc) followed by 0x00.
 * @param[in]     type     frame type (TL_PROTO_MSG_*)
 * @param[in]     seq      sender's sequence number
 * @param[in]     payload  payload bytes (may be NULL when len is 0)
 * @param[in]     len      payload length, at most TL_PROTO_MAX_PAYLOAD
 * @param[out]    out      output buffer
 * @param[in]     out_cap  its size; TL_PROTO_MAX_ENCODED(len + 10) always suffices
 * @return        encoded size including the 0x00 delimiter, or 0 if len is too large or out too small
 */
size_t tl_proto_encode(uint8_t type, uint16_t seq, const uint8_t *payload, size_t len, uint8_t *out, size_t out_cap);

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
 *                TL_PROTO_DEC_*: the frame that this 0x00 ended is bad; it is dropped and the
 *                decoder is already waiting for the next frame. Errors are reported only at
 *                the 0x00, exactly once per bad frame.
 */
int tl_proto_decoder_push(tl_proto_decoder_t *d, uint8_t byte, tl_proto_frame_t *out);

/* ---- payload builders (board -> host) ------------------------------------- */
/* Each returns the payload size written to buf, or 0 if cap is too small / arguments invalid. */

/**
 * @brief         HELLO payload: TL_PROTO_HELLO_FIXED bytes + board name.
 * @param[out]    buf  destination
 * @param[in]     cap  size of buf
 * @param[in]     h    fields
 * @return        payload size, 0 if it does not fit
 */
size_t tl_proto_hello_payload(uint8_t *buf, size_t cap, const tl_proto_hello_t *h);

/**
 * @brief         PRED payload: step u32, rx_freed u32, count u16, count x int16.
 * @param[out]    buf       destination
 * @param[in]     cap       size of buf
 * @param[in]     step      index of the input sample that produced these outputs
 * @param[in]     rx_freed  received bytes taken or dropped since boot
 * @param[in]     y         raw int16 model outputs (may be NULL when n is 0)
 * @param[in]     n         number of outputs
 * @return        payload size (10 + 2n), 0 if it does not fit or exceeds TL_PROTO_MAX_PAYLOAD
 */
size_t tl_proto_pred_payload(uint8_t *buf, size_t cap, uint32_t step, uint32_t rx_freed, const int16_t *y, uint16_t n);

/**
 * @brief         STATS payload (TL_PROTO_STATS_SIZE bytes).
 * @param[out]    buf  destination
 * @param[in]     cap  size of buf
 * @param[in]     s    counters
 * @return        TL_PROTO_STATS_SIZE, or 0 if cap is too small
 */
size_t tl_proto_stats_payload(uint8_t *buf, size_t cap, const tl_proto_stats_t *s);

/**
 * @brief         ERROR payload: code u16, rx_freed u32, frame_type u8, exception u32, pc u32. No text: the
 *                host words every error from these fields (tinylstm.host.link.protocol.error_text).
 * @param[out]    buf         destination
 * @param[in]     cap         size of buf
 * @param[in]     code        TL_PROTO_ERROR_*
 * @param[in]     rx_freed    received bytes taken or dropped since boot
 * @param[in]     frame_type  TL_PROTO_MSG_* of the frame the error answers, 0 if none
 * @param[in]     exception   FAULT: the exception number (Cortex-M IPSR, RISC-V mcause, Xtensa EXCCAUSE), else 0
 * @param[in]     pc          FAULT: the faulting pc, else 0
 * @return        TL_PROTO_ERROR_SIZE, or 0 if cap is too small
 */
size_t tl_proto_error_payload(uint8_t *buf, size_t cap, uint16_t code, uint32_t rx_freed, uint8_t frame_type,
                              uint32_t exception, uint32_t pc);

/**
 * @brief         ACK payload: acknowledged type u8, its seq u16, next_step u32, rx_freed u32.
 * @param[out]    buf         destination
 * @param[in]     cap         size of buf
 * @param[in]     acked_type  type of the host frame that was applied
 * @param[in]     acked_seq   its sequence number
 * @param[in]     next_step   step the board expects in the next INPUT
 * @param[in]     rx_freed    received bytes taken or dropped since boot
 * @return        TL_PROTO_ACK_SIZE, or 0 if cap is too small
 */
size_t tl_proto_ack_payload(uint8_t *buf, size_t cap, uint8_t acked_type, uint16_t acked_seq, uint32_t next_step,
                            uint32_t rx_freed);

/**
 * @brief         NAK payload: reason u8, refused seq u16, its step u32, next_step u32, rx_freed u32.
 * @param[out]    buf        destination
 * @param[in]     cap        size of buf
 * @param[in]     reason     TL_PROTO_NAK_*
 * @param[in]     seq        sequence number of the refused host frame
 * @param[in]     step       step named by the refused frame
 * @param[in]     next_step  step the board expects in the next INPUT
 * @param[in]     rx_freed   received bytes taken or dropped since boot
 * @return        TL_PROTO_NAK_SIZE, or 0 if cap is too small
 */
size_t tl_proto_nak_payload(uint8_t *buf, size_t cap, uint8_t reason, uint16_t seq, uint32_t step, uint32_t next_step,
                            uint32_t rx_freed);

/* ---- payload parsers (host -> board) -------------------------------------- */

/**
 * @brief         Parse an INPUT payload: first step u32, count n u8 (>= 1), n x input_size int8.
 * @param[in]     payload     frame payload
 * @param[in]     len         payload length
 * @param[in]     input_size  values per sample (the model's input size)
 * @param[out]    step        step of the first sample
 * @param[out]    n           number of samples
 * @param[out]    x           points at the first sample inside payload (n * input_size values)
 * @return        TL_PROTO_OK, TL_PROTO_ERR_PAYLOAD (shorter than its head, or n == 0) or
 *                TL_PROTO_ERR_SIZE (the samples are not input_size values each)
 */
int tl_proto_input_parse(const uint8_t *payload, size_t len, uint16_t input_size, uint32_t *step, uint8_t *n,
                         const int8_t **x);

/**
 * @brief         Parse an INPUT_S16 payload: first step u32, count n u8 (>= 1), n x input_size int16 LE.
 * @param[in]     payload     frame payload
 * @param[in]     len         payload length
 * @param[in]     input_size  values per sample
 * @param[out]    step        step of the first sample
 * @param[out]    n           number of samples
 * @return        TL_PROTO_OK, TL_PROTO_ERR_PAYLOAD or TL_PROTO_ERR_SIZE
 */
int tl_proto_input_s16_parse(const uint8_t *payload, size_t len, uint16_t input_size, uint32_t *step, uint8_t *n);

/**
 * @brief         Sample k of a payload that tl_proto_input_s16_parse() accepted.
 * @param[in]     payload     frame payload
 * @param[in]     k           sample index, below the parsed n
 * @param[in]     input_size  values per sample
 * @param[out]    x           input_size int16 values
 */
void tl_proto_input_s16_sample(const uint8_t *payload, uint8_t k, uint16_t input_size, int16_t *x);

/**
 * @brief         Parse an INPUT_F32 payload: first step u32, count n u8 (>= 1), n x input_size f32 LE.
 * @param[in]     payload     frame payload
 * @param[in]     len         payload length
 * @param[in]     input_size  values per sample
 * @param[out]    step        step of the first sample
 * @param[out]    n           number of samples
 * @return        TL_PROTO_OK, TL_PROTO_ERR_PAYLOAD or TL_PROTO_ERR_SIZE
 */
int tl_proto_input_f32_parse(const uint8_t *payload, size_t len, uint16_t input_size, uint32_t *step, uint8_t *n);

/**
 * @brief         Sample k of a payload that tl_proto_input_f32_parse() accepted, as floats.
 * @param[in]     payload     frame payload
 * @param[in]     k           sample index, below the parsed n
 * @param[in]     input_size  values per sample
 * @param[out]    x           input_size floats (IEEE-754 binary32 bit patterns, NaN included)
 */
void tl_proto_input_f32_sample(const uint8_t *payload, uint8_t k, uint16_t input_size, float *x);

/**
 * @brief         Parse a payload that is one step index u32 (RESET, PRED_REQ).
 * @param[in]     payload  frame payload
 * @param[in]     len      payload length
 * @param[out]    step     the step
 * @return        TL_PROTO_OK or TL_PROTO_ERR_PAYLOAD (not exactly 4 bytes)
 */
int tl_proto_step_parse(const uint8_t *payload, size_t len, uint32_t *step);

/**
 * @brief         Parse a SET_SOURCE payload (source u8).
 * @param[in]     payload  frame payload
 * @param[in]     len      payload length
 * @param[out]    source   TL_PROTO_SOURCE_*
 * @return        TL_PROTO_OK or TL_PROTO_ERR_PAYLOAD (wrong size or unknown source)
 */
int tl_proto_set_source_parse(const uint8_t *payload, size_t len, uint8_t *source);

#ifdef __cplusplus
}
#endif

#endif /* TL_PROTO_H */
