/*
 * tl_app.c - board-independent TinyLSTM firmware: frame protocol in, one model step per
 * sample, PRED frames out. Behaviour is specified in tl_app.h and docs/serial-protocol.md.
 */
#include "tl_app.h"

#include "tinylstm.h"
#include "tl_hal.h"
#include "tl_model.h"
#include "tl_sensor.h"

#include "tl_proto.h"

#define I TL_MODEL_INPUT_SIZE
#define O TL_MODEL_OUTPUT_SIZE

/* The model's input word (TL_MODEL_INPUT_BITS): a model with an int16 input (int16-h, or an int16 input on an int8
 * h) takes int16 samples (INPUT_S16, tl_step_s16), every other model int8 ones (INPUT, tl_step). The other frame is refused with ERROR UNSUPPORTED. */
#if TL_MODEL_INPUT_BITS == 16
typedef int16_t input_t;
#define MSG_INPUT TL_PROTO_MSG_INPUT_S16
#define MSG_OTHER_INPUT TL_PROTO_MSG_INPUT
#define MAX_INPUT_SIZE TL_PROTO_MAX_INPUT_SIZE_S16
#define model_step tl_step_s16
#define model_quantize tl_quantize_input_s16
#elif TL_MODEL_INPUT_BITS == 8
typedef int8_t input_t;
#define MSG_INPUT TL_PROTO_MSG_INPUT
#define MSG_OTHER_INPUT TL_PROTO_MSG_INPUT_S16
#define MAX_INPUT_SIZE TL_PROTO_MAX_INPUT_SIZE
#define model_step tl_step
#define model_quantize tl_quantize_input
#else
#error "tl_model.h has no TL_MODEL_INPUT_BITS (8 or 16): export the model again with this tinylstm"
#endif

#if TL_APP_HAS_REPLAY
#include "tl_replay.h"
#if TL_REPLAY_MODEL_HASH != TL_MODEL_HASH
#error "tl_replay.h was generated for another model"
#endif
#if TL_REPLAY_INPUT_BITS != TL_MODEL_INPUT_BITS
#error "tl_replay.h holds samples of another input type than the model's (TL_MODEL_INPUT_BITS)"
#endif
#endif

/* The link's limits (docs/serial-protocol.md, §Limits); `tinylstm build` refuses such models first. */
#if I > MAX_INPUT_SIZE
#error "the model's input size does not fit one INPUT (int8) / INPUT_S16 (int16) frame"
#endif
#if O > TL_PROTO_MAX_OUTPUT_SIZE
#error "the model's output size does not fit one PRED frame"
#endif
/* INPUT_F32 carries one float sample only up to TL_PROTO_MAX_INPUT_SIZE_F32 inputs. */
#define HAS_F32_INPUT (I <= TL_PROTO_MAX_INPUT_SIZE_F32)

/* PRED frames kept for PRED_REQ: a power of two, about 512 bytes of outputs at most. */
#ifndef TL_APP_PRED_HISTORY
#define TL_APP_PRED_HISTORY (O <= 8 ? 32u : O <= 16 ? 16u : O <= 32 ? 8u : O <= 64 ? 4u : 2u)
#endif
#if (TL_APP_PRED_HISTORY & (TL_APP_PRED_HISTORY - 1u)) != 0 || TL_APP_PRED_HISTORY > 128
#error "TL_APP_PRED_HISTORY must be a power of two, at most 128"
#endif

/* Received bytes handled per tl_app_poll() before the replay/sensor source gets its turn. */
#ifndef TL_APP_RX_BUDGET
#define TL_APP_RX_BUDGET 64u
#endif

/* Largest payload this app sends: PRED, ERROR (7 + 64), HELLO (31 + 32) or STATS (36). */
#define PRED_BYTES (TL_PROTO_PRED_HEAD + 2u * O)
#define PAYLOAD_MAX (PRED_BYTES > 71u ? PRED_BYTES : 71u)

static int16_t state_buf[TL_MODEL_STATE_WORDS];
static tl_state_t state;
static tl_proto_decoder_t decoder;
static uint8_t payload[PAYLOAD_MAX];
static uint8_t wire[TL_PROTO_MAX_ENCODED(PAYLOAD_MAX + TL_PROTO_HEADER_SIZE + TL_PROTO_CRC_SIZE)];
static uint16_t tx_seq;
static uint8_t source = TL_APP_BOOT_SOURCE;
static uint32_t step_index;   /* the step the next sample runs as: the PRED step, INPUT's expected step */
static uint32_t history_from; /* first step of this run (boot, RESET, SET_SOURCE): no PRED before it */
static int16_t history[TL_APP_PRED_HISTORY][O];
static uint32_t rx_taken; /* bytes taken from the HAL's RX buffer since boot */
static tl_proto_stats_t stats;
static uint32_t overflows_seen;
#if TL_APP_HAS_REPLAY
static uint32_t replay_pos;
static uint32_t replay_next_ms;
#endif

/* Weak default sensor: no samples. A board's own tl_sensor_read replaces it at link time. */
__attribute__((weak)) int tl_sensor_read(float *x)
{
    (void)x;
    return 0;
}

/* Weak default idle: return at once (the core keeps polling). A port with a low-power wait replaces it. */
__attribute__((weak)) void tl_hal_idle(void) {}

/* Received bytes that are no longer in the HAL's buffer: taken by the app or dropped. */
static uint32_t rx_freed(void) { return rx_taken + tl_hal_rx_overflows(); }

static void send(uint8_t type, size_t len)
{
    size_t n = tl_proto_encode(type, tx_seq, payload, len, wire, sizeof wire);
    if (n == 0) return;
    tx_seq++;
    if (tl_hal_write(wire, n) != 0) stats.tx_timeouts++;
}

/* ERROR `code` about a frame of `frame_type` (0: none): the host words it (docs/serial-protocol.md, §4.4). */
static void send_error(uint16_t code, uint8_t frame_type)
{
    send(TL_PROTO_MSG_ERROR, tl_proto_error_payload(payload, sizeof payload, code, rx_freed(), frame_type, 0, 0));
}

static void send_ack(const tl_proto_frame_t *f)
{
    send(TL_PROTO_MSG_ACK, tl_proto_ack_payload(payload, sizeof payload, f->type, f->seq, step_index, rx_freed()));
}

static void send_nak(const tl_proto_frame_t *f, uint8_t reason, uint32_t step)
{
    stats.inputs_refused++;
    send(TL_PROTO_MSG_NAK, tl_proto_nak_payload(payload, sizeof payload, reason, f->seq, step, step_index, rx_freed()));
}

static void send_pred(uint32_t step)
{
    send(TL_PROTO_MSG_PRED,
         tl_proto_pred_payload(payload, sizeof payload, step, rx_freed(), history[step % TL_APP_PRED_HISTORY], O));
}

static void send_hello(void)
{
    tl_proto_hello_t h;
    h.model_hash = TL_MODEL_HASH;
    h.kernel_version = TL_KERNEL_VERSION;
    h.cell = TL_MODEL_CELL;
    h.layers = TL_MODEL_NUM_LAYERS;
    h.input_size = I;
    h.hidden_size = TL_MODEL_HIDDEN_SIZE;
    h.output_size = O;
    /* the host picks INPUT or INPUT_S16 by it: an int16 input on an int8 h adds the blob's flag */
    h.hidden_bits = TL_MODEL_HIDDEN_BITS | (TL_MODEL_INPUT_BITS > TL_MODEL_HIDDEN_BITS ? TL_BLOB_INPUT16_FLAG : 0);
#if TL_MODEL_WINDOW > 0 && defined(TL_MODEL_BIDIRECTIONAL) && TL_MODEL_BIDIRECTIONAL
    h.mode = TL_PROTO_MODE_WINDOW_END; /* the window's answer comes at its last step */
#else
    h.mode = TL_MODEL_WINDOW > 0 ? TL_PROTO_MODE_WINDOW : TL_PROTO_MODE_STREAM;
#endif
    h.window = TL_MODEL_WINDOW;
    h.source = source;
    h.history = TL_APP_PRED_HISTORY;
    h.rx_capacity = tl_hal_rx_capacity();
    h.next_step = step_index;
    h.rx_freed = rx_freed();
    h.board_name = tl_hal_board_name();
    send(TL_PROTO_MSG_HELLO, tl_proto_hello_payload(payload, sizeof payload, &h));
}

static void send_stats(void)
{
    stats.dropped_rx = tl_hal_rx_overflows();
    stats.next_step = step_index;
    stats.rx_freed = rx_freed();
    send(TL_PROTO_MSG_STATS, tl_proto_stats_payload(payload, sizeof payload, &stats));
}

/* Zero the state; the next sample runs as `first`. Older PREDs can no longer be sent again. */
static void restart_stream(uint32_t first)
{
    tl_reset(&state);
    step_index = first;
    history_from = first;
#if TL_APP_HAS_REPLAY
    replay_pos = 0;
    replay_next_ms = tl_hal_millis();
#endif
}

/* One model step on a quantized sample, kept in the history, then its PRED. */
static void run_step(const input_t *x)
{
    int16_t *y = history[step_index % TL_APP_PRED_HISTORY];
    uint32_t t0;
    if (TL_MODEL_WINDOW > 0 && step_index % (uint32_t)(TL_MODEL_WINDOW > 0 ? TL_MODEL_WINDOW : 1) == 0u)
        tl_reset(&state); /* before the first step of each window */
    t0 = tl_hal_cycles();
    model_step(&state, x, y);
    stats.cycles += (uint32_t)(tl_hal_cycles() - t0);
    stats.steps++;
    tl_hal_watchdog_refresh();
    send_pred(step_index);
    step_index++;
}

/* Quantize and run a float sample of an INPUT_F32 frame (frame_type) or the sensor (0); 0 if it is NaN or
 * infinite (nothing is run). */
static int run_float_step(const float *xf, uint8_t frame_type)
{
    input_t xq[I];
    if (model_quantize(&tl_model, xf, xq) != TL_OK) {
        send_error(TL_PROTO_ERROR_NOT_FINITE, frame_type);
        return 0;
    }
    run_step(xq);
    return 1;
}

/* INPUT (int8) or INPUT_S16 (int16), whichever is the model's (MSG_INPUT), and INPUT_F32: applied only if the
 * source is the host and the first sample is the step the board expects; anything else is refused (NAK) and
 * never touches the state. */
static void on_input(const tl_proto_frame_t *f)
{
    uint32_t first = 0;
    uint8_t n = 0, k;
#if TL_MODEL_INPUT_BITS == 8
    const int8_t *x = 0;
#endif
    int rc;
    if (f->type == MSG_INPUT) {
#if TL_MODEL_INPUT_BITS == 16
        rc = tl_proto_input_s16_parse(f->payload, f->len, I, &first, &n);
#else
        rc = tl_proto_input_parse(f->payload, f->len, I, &first, &n, &x);
#endif
    } else if (HAS_F32_INPUT) {
        rc = tl_proto_input_f32_parse(f->payload, f->len, I, &first, &n);
    } else {
        send_error(TL_PROTO_ERROR_UNSUPPORTED, f->type); /* too wide for INPUT_F32 */
        return;
    }
    if (rc != TL_PROTO_OK) {
        send_error(rc == TL_PROTO_ERR_SIZE ? TL_PROTO_ERROR_INPUT_SIZE : TL_PROTO_ERROR_BAD_PAYLOAD, f->type);
        return;
    }
    if (source != TL_PROTO_SOURCE_HOST) {
        send_nak(f, TL_PROTO_NAK_SOURCE, first);
        return;
    }
    if (first != step_index) {
        send_nak(f, TL_PROTO_NAK_GAP, first);
        return;
    }
    for (k = 0; k < n; k++) {
        if (f->type == MSG_INPUT) {
#if TL_MODEL_INPUT_BITS == 16
            int16_t x[I]; /* the payload's int16 are little-endian and unaligned: copied out */
            tl_proto_input_s16_sample(f->payload, k, I, x);
            run_step(x);
#else
            run_step(&x[(size_t)k * I]);
#endif
        } else {
            float xf[I];
            tl_proto_input_f32_sample(f->payload, k, I, xf);
            if (!run_float_step(xf, f->type))
                return; /* the rest of the frame is dropped: the host sees step_index in the next NAK */
        }
    }
}

static void on_pred_req(const tl_proto_frame_t *f)
{
    uint32_t step;
    if (tl_proto_step_parse(f->payload, f->len, &step) != TL_PROTO_OK) {
        send_error(TL_PROTO_ERROR_BAD_PAYLOAD, f->type);
    } else if (step - step_index < 0x80000000u) { /* step >= step_index: not run yet */
        send_nak(f, TL_PROTO_NAK_NOT_YET, step);
    } else if (step - history_from >= 0x80000000u || step_index - step > TL_APP_PRED_HISTORY) {
        send_nak(f, TL_PROTO_NAK_EXPIRED, step); /* before this run, or overwritten */
    } else {
        send_pred(step);
    }
}

static void on_reset(const tl_proto_frame_t *f)
{
    uint32_t first;
    if (tl_proto_step_parse(f->payload, f->len, &first) != TL_PROTO_OK) {
        send_error(TL_PROTO_ERROR_BAD_PAYLOAD, f->type);
        return;
    }
    restart_stream(first);
    send_ack(f);
}

static void on_set_source(const tl_proto_frame_t *f)
{
    uint8_t s;
    if (tl_proto_set_source_parse(f->payload, f->len, &s) != TL_PROTO_OK) {
        send_error(TL_PROTO_ERROR_BAD_PAYLOAD, f->type); /* unknown source */
        return;
    }
#if !TL_APP_HAS_REPLAY
    if (s == TL_PROTO_SOURCE_REPLAY) {
        send_error(TL_PROTO_ERROR_UNSUPPORTED, f->type); /* no replay data in this build */
        return;
    }
#endif
    source = s;
    restart_stream(0);
    send_ack(f);
}

static void on_frame(const tl_proto_frame_t *f)
{
    switch (f->type) {
    case MSG_INPUT:
    case TL_PROTO_MSG_INPUT_F32:
        on_input(f);
        return;
    case MSG_OTHER_INPUT: /* the samples of the other input type */
        send_error(TL_PROTO_ERROR_UNSUPPORTED, f->type);
        return;
    case TL_PROTO_MSG_PRED_REQ:
        on_pred_req(f);
        return;
    case TL_PROTO_MSG_RESET:
        on_reset(f);
        return;
    case TL_PROTO_MSG_SET_SOURCE:
        on_set_source(f);
        return;
    case TL_PROTO_MSG_HELLO_REQ:
    case TL_PROTO_MSG_STATS_REQ:
        if (f->len != 0)
            send_error(TL_PROTO_ERROR_BAD_PAYLOAD, f->type); /* a request takes no payload */
        else if (f->type == TL_PROTO_MSG_HELLO_REQ)
            send_hello();
        else
            send_stats();
        return;
#ifdef TL_APP_TEST_FAULT
    case TL_APP_TEST_FAULT: /* test builds only: prove the fault handler reports */
        __builtin_trap();
#endif
    default:
        send_error(TL_PROTO_ERROR_UNKNOWN_TYPE, f->type);
    }
}

static void poll_source(void)
{
    if (source == TL_PROTO_SOURCE_SENSOR) {
        float x[I];
        if (tl_sensor_read(x)) (void)run_float_step(x, 0);
    }
#if TL_APP_HAS_REPLAY
    else if (source == TL_PROTO_SOURCE_REPLAY && (int32_t)(tl_hal_millis() - replay_next_ms) >= 0) {
        replay_next_ms += TL_REPLAY_PERIOD_MS;
        run_step(tl_replay_data[replay_pos]);
        replay_pos = replay_pos + 1u == TL_REPLAY_STEPS ? 0u : replay_pos + 1u;
    }
#endif
}

/* Called by the port's fault handler: one ERROR FAULT frame, then the port resets the board. */
static void report_fault(uint32_t pc, uint32_t exception)
{
    send(TL_PROTO_MSG_ERROR,
         tl_proto_error_payload(payload, sizeof payload, TL_PROTO_ERROR_FAULT, rx_freed(), 0, exception, pc));
}

void tl_app_init(void)
{
    static const uint8_t flush = 0;
    tl_hal_on_fault(report_fault);
    if (tl_state_init(&state, &tl_model, state_buf, TL_MODEL_STATE_WORDS) != TL_OK) {
        send_error(TL_PROTO_ERROR_INTERNAL, 0); /* the model was rejected by tl_state_init */
        tl_hal_exit(1);
    }
    tl_proto_decoder_init(&decoder);
    restart_stream(0);
    (void)tl_hal_write(&flush, 1);
    send_hello();
    if (tl_hal_reset_was_watchdog()) send_error(TL_PROTO_ERROR_WATCHDOG, 0);
}

void tl_app_poll(void)
{
    int c;
    uint32_t ovf, budget = TL_APP_RX_BUDGET, taken = rx_taken;
    tl_hal_watchdog_refresh();
    while (budget-- > 0u && (c = tl_hal_getc()) >= 0) {
        tl_proto_frame_t f;
        int rc;
        rx_taken++;
        rc = tl_proto_decoder_push(&decoder, (uint8_t)c, &f);
        if (rc == 1) {
            on_frame(&f);
            break; /* one frame per poll: the replay/sensor source is never starved */
        }
        if (rc < 0) {
            stats.frames_bad++;
            send_error(TL_PROTO_ERROR_BAD_FRAME, 0);
        }
    }
    ovf = tl_hal_rx_overflows();
    if (ovf != overflows_seen) {
        overflows_seen = ovf;
        send_error(TL_PROTO_ERROR_OVERRUN, 0);
    }
    poll_source();
    /* host-fed and no byte: only a received byte can make work (replay and sensor sources poll on) */
    if (source == TL_PROTO_SOURCE_HOST && rx_taken == taken) tl_hal_idle();
}
