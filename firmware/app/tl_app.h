/*
 * tl_app.h - the board-independent TinyLSTM firmware application.
 *
 * Talks the frame protocol of docs/serial-protocol.md over tl_hal.h and runs the generated
 * model (tl_model.h) with the fixed-point kernel. Bare-metal ports call it from main.c;
 * the Arduino glue (firmware/platformio/hal_arduino.cpp) from setup() and loop().
 *
 * Behaviour (docs/boards.md has the user-facing version):
 * - tl_app_init() sends one 0x00 (flushes a receiver that joined mid-frame) and HELLO with seq 0.
 * - Every INPUT / INPUT_F32 frame runs exactly one tl_step and is answered by one PRED
 *   (step index + all int16 outputs), in window mode too: the host picks the window's last step.
 * - Window mode (TL_MODEL_WINDOW > 0): the state is reset before the first step of each window,
 *   i.e. before every step whose index s (counted from 0 since boot or the last RESET, the index
 *   sent in PRED) satisfies s % TL_MODEL_WINDOW == 0. Stream mode never resets implicitly.
 * - RESET zeroes the state and the step index (ACK); HELLO_REQ -> HELLO; STATS_REQ -> STATS;
 *   SET_SOURCE -> ACK (or ERROR UNSUPPORTED for replay in a build without replay data).
 * - A frame that fails to decode -> ERROR BAD_FRAME and +1 in STATS.frames_bad; lost received
 *   bytes (tl_hal_rx_overflows grew) -> ERROR OVERRUN.
 * - Sources: host (INPUT frames), replay (tl_replay.h data in flash, looped, one sample every
 *   TL_REPLAY_PERIOD_MS), sensor (tl_sensor.h). INPUT frames are accepted whatever the source.
 * No malloc; all state is static.
 */
#ifndef TL_APP_H
#define TL_APP_H

#ifdef __cplusplus
extern "C" {
#endif

/* Boot source: 0 host, 1 replay, 2 sensor (TL_SOURCE_*). */
#ifndef TL_APP_BOOT_SOURCE
#define TL_APP_BOOT_SOURCE 0
#endif

/* Milliseconds between replayed samples (default 20 ms = 50 Hz); 0 = as fast as the UART allows. */
#ifndef TL_REPLAY_PERIOD_MS
#define TL_REPLAY_PERIOD_MS 20
#endif

/* Call once after tl_hal_init(): sets up the model state and sends HELLO. */
void tl_app_init(void);

/* Call forever: drains received bytes, answers frames, runs replay/sensor steps. Never blocks. */
void tl_app_poll(void);

#ifdef __cplusplus
}
#endif

#endif /* TL_APP_H */
