/*
 * tl_app.c - board-independent TinyLSTM firmware: frame protocol in, one model step per
 * sample, PRED frames out. Behaviour is specified in tl_app.h and docs/boards.md.
 */
#include "tl_app.h"

#include "tinylstm.h"
#include "tl_hal.h"
#include "tl_model.h"
#include "tl_sensor.h"

#include "tl_proto.h"

#if TL_APP_HAS_REPLAY
#include "tl_replay.h"
#if TL_REPLAY_MODEL_HASH != TL_MODEL_HASH
#error "tl_replay.h was generated for another model"
#endif
#endif

#define I TL_MODEL_INPUT_SIZE
#define O TL_MODEL_OUTPUT_SIZE

/* Largest payload this app sends: PRED, ERROR (3 + 64) or HELLO (19 + 32). */
#define PRED_BYTES (6u + 2u * O)
#define PAYLOAD_MAX (PRED_BYTES > 67u ? PRED_BYTES : 67u)

static int16_t state_buf[TL_MODEL_STATE_WORDS];
static tl_state_t state;
static tl_proto_decoder_t decoder;
static uint8_t payload[PAYLOAD_MAX];
static uint8_t wire[TL_PROTO_MAX_ENCODED(PAYLOAD_MAX + TL_PROTO_HEADER_SIZE + TL_PROTO_CRC_SIZE)];
static uint16_t tx_seq;
static uint8_t source = TL_APP_BOOT_SOURCE;
static uint32_t step_index; /* since boot or the last RESET / SET_SOURCE: the PRED step */
static uint32_t steps_total; /* since boot: STATS.steps */
static uint64_t cycles_total;
static uint32_t frames_bad;
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

static void send(uint8_t type, size_t len)
{
    size_t n = tl_proto_encode(type, tx_seq, payload, len, wire, sizeof wire);
    if (n == 0)
        return;
    tx_seq++;
    tl_hal_write(wire, n);
}

static void send_error(uint16_t code, const char *msg)
{
    send(TL_MSG_ERROR, tl_proto_error_payload(payload, sizeof payload, code, msg));
}

static void send_ack(const tl_proto_frame_t *f)
{
    send(TL_MSG_ACK, tl_proto_ack_payload(payload, sizeof payload, f->type, f->seq));
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
    h.mode = TL_MODEL_WINDOW > 0 ? TL_PROTO_MODE_WINDOW : TL_PROTO_MODE_STREAM;
    h.window = TL_MODEL_WINDOW;
    h.source = source;
    h.board_name = tl_hal_board_name();
    send(TL_MSG_HELLO, tl_proto_hello_payload(payload, sizeof payload, &h));
}

static void send_stats(void)
{
    uint32_t per_step = steps_total && tl_hal_has_cycle_counter() ? (uint32_t)(cycles_total / steps_total) : 0u;
    send(TL_MSG_STATS, tl_proto_stats_payload(payload, sizeof payload, steps_total, per_step,
                                              tl_hal_rx_overflows(), frames_bad));
}

static void restart_stream(void)
{
    tl_reset(&state);
    step_index = 0;
#if TL_APP_HAS_REPLAY
    replay_pos = 0;
    replay_next_ms = tl_hal_millis();
#endif
}

/* One model step on a quantized sample, then its PRED. */
static void run_step(const int8_t *x)
{
    int16_t y[O];
    uint32_t t0;
    if (TL_MODEL_WINDOW > 0 && step_index % (uint32_t)(TL_MODEL_WINDOW > 0 ? TL_MODEL_WINDOW : 1) == 0u)
        tl_reset(&state); /* before the first step of each window */
    t0 = tl_hal_cycles();
    tl_step(&state, x, y);
    cycles_total += (uint32_t)(tl_hal_cycles() - t0);
    steps_total++;
    send(TL_MSG_PRED, tl_proto_pred_payload(payload, sizeof payload, step_index, y, O));
    step_index++;
}

static void run_float_step(const float *xf)
{
    int8_t xq[I];
    if (tl_quantize_input(&tl_model, xf, xq) != TL_OK) {
        send_error(TL_ERR_BAD_PAYLOAD, "input is NaN or infinite");
        return;
    }
    run_step(xq);
}

static void on_input(const tl_proto_frame_t *f)
{
    uint16_t n = 0;
    if (f->type == TL_MSG_INPUT) {
        int8_t x[I];
        int rc = tl_proto_input_parse(f->payload, f->len, x, I, &n);
        if (rc == TL_PROTO_OK && n == I)
            run_step(x);
        else
            send_error(rc == TL_PROTO_ERR_PAYLOAD ? TL_ERR_BAD_PAYLOAD : TL_ERR_INPUT_SIZE, "INPUT count != input size");
    } else {
        float x[I];
        int rc = tl_proto_input_f32_parse(f->payload, f->len, x, I, &n);
        if (rc == TL_PROTO_OK && n == I)
            run_float_step(x);
        else
            send_error(rc == TL_PROTO_ERR_PAYLOAD ? TL_ERR_BAD_PAYLOAD : TL_ERR_INPUT_SIZE, "INPUT_F32 count != input size");
    }
}

static void on_set_source(const tl_proto_frame_t *f)
{
    uint8_t s;
    if (tl_proto_set_source_parse(f->payload, f->len, &s) != TL_PROTO_OK) {
        send_error(TL_ERR_BAD_PAYLOAD, "unknown source");
        return;
    }
#if !TL_APP_HAS_REPLAY
    if (s == TL_SOURCE_REPLAY) {
        send_error(TL_ERR_UNSUPPORTED, "no replay data in this build");
        return;
    }
#endif
    source = s;
    restart_stream();
    send_ack(f);
}

static void on_frame(const tl_proto_frame_t *f)
{
    int empty = f->len == 0;
    switch (f->type) {
    case TL_MSG_INPUT:
    case TL_MSG_INPUT_F32:
        on_input(f);
        return;
    case TL_MSG_SET_SOURCE:
        on_set_source(f);
        return;
    case TL_MSG_HELLO_REQ:
    case TL_MSG_RESET:
    case TL_MSG_STATS_REQ:
        if (!empty) {
            send_error(TL_ERR_BAD_PAYLOAD, "request takes no payload");
        } else if (f->type == TL_MSG_HELLO_REQ) {
            send_hello();
        } else if (f->type == TL_MSG_STATS_REQ) {
            send_stats();
        } else {
            restart_stream();
            send_ack(f);
        }
        return;
    default:
        send_error(TL_ERR_UNKNOWN_TYPE, "unknown frame type");
    }
}

static void poll_source(void)
{
    if (source == TL_SOURCE_SENSOR) {
        float x[I];
        if (tl_sensor_read(x))
            run_float_step(x);
    }
#if TL_APP_HAS_REPLAY
    else if (source == TL_SOURCE_REPLAY && (int32_t)(tl_hal_millis() - replay_next_ms) >= 0) {
        replay_next_ms += TL_REPLAY_PERIOD_MS;
        run_step(tl_replay_data[replay_pos]);
        replay_pos = replay_pos + 1u == TL_REPLAY_STEPS ? 0u : replay_pos + 1u;
    }
#endif
}

void tl_app_init(void)
{
    static const uint8_t flush = 0;
    if (tl_state_init(&state, &tl_model, state_buf, TL_MODEL_STATE_WORDS) != TL_OK) {
        send_error(TL_ERR_INTERNAL, "model rejected by tl_state_init");
        tl_hal_exit(1);
    }
    tl_proto_decoder_init(&decoder);
    restart_stream();
    tl_hal_write(&flush, 1);
    send_hello();
}

void tl_app_poll(void)
{
    int c;
    uint32_t ovf;
    while ((c = tl_hal_getc()) >= 0) {
        tl_proto_frame_t f;
        int rc = tl_proto_decoder_push(&decoder, (uint8_t)c, &f);
        if (rc == 1) {
            on_frame(&f);
        } else if (rc < 0) {
            frames_bad++;
            send_error(TL_ERR_BAD_FRAME, "frame failed to decode");
        }
    }
    ovf = tl_hal_rx_overflows();
    if (ovf != overflows_seen) {
        overflows_seen = ovf;
        send_error(TL_ERR_OVERRUN, "received bytes lost");
    }
    poll_source();
}
