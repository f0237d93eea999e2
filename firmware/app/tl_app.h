/*
 * tl_app.h - the board-independent TinyLSTM firmware application.
 *
 * Talks the frame protocol of docs/serial-protocol.md over tl_hal.h and runs the generated
 * model (tl_model.h) with the fixed-point kernel. Bare-metal ports call it from main.c;
 * the Arduino glue (firmware/platformio/hal_arduino.cpp) from setup() and loop().
 *
 * Behaviour (docs/serial-protocol.md has the full contract, docs/boards.md the user-facing view):
 * - tl_app_init() sends one 0x00 (flushes a receiver that joined mid-frame) and HELLO with seq 0:
 *   model identity, the receive capacity (tl_hal_rx_capacity: the host's credit window), the
 *   PRED history depth and the step expected next. After a watchdog reset it adds ERROR WATCHDOG.
 * - INPUT (int8), INPUT_S16 (int16) and INPUT_F32 (float32, quantized on the board) carry one or more
 *   consecutive samples and the step of the first. The model's input type (TL_MODEL_INPUT_BITS) says
 *   which of INPUT and INPUT_S16 it takes: int16 for an int16-h model (tl_step_s16), else int8
 *   (tl_step); the other one is refused with ERROR UNSUPPORTED naming the right frame. They run
 *   only if the source is the host and that step is the step expected next (step_index); each
 *   sample runs exactly one step and is answered by one PRED (its step + all int16 outputs).
 *   Anything else is refused with a NAK (GAP / SOURCE) that names the expected step, and never
 *   touches the state: a lost INPUT cannot shift later samples onto the wrong step.
 * - Every frame the board sends carries rx_freed, the received bytes taken or dropped since boot:
 *   the host's credit comes back with it.
 * - The last TL_APP_PRED_HISTORY outputs are kept: PRED_REQ step sends that PRED again, or a NAK
 *   (NOT_YET: not run; EXPIRED: no longer held or before the last RESET).
 * - Window mode (TL_MODEL_WINDOW > 0): the state is reset before every step s with
 *   s % TL_MODEL_WINDOW == 0. Stream mode never resets implicitly.
 * - RESET step zeroes the state and makes `step` the next expected step (ACK); SET_SOURCE
 *   switches the source and restarts at step 0 (ACK, or ERROR UNSUPPORTED for replay in a
 *   build without replay data); HELLO_REQ -> HELLO; STATS_REQ -> STATS.
 * - A frame that fails to decode -> ERROR BAD_FRAME and +1 in STATS.frames_bad; lost received
 *   bytes (tl_hal_rx_overflows grew) -> ERROR OVERRUN. A CPU fault -> ERROR FAULT, then the
 *   port resets the board.
 * - tl_app_poll() handles at most one frame (or TL_APP_RX_BUDGET bytes) per call, then runs the
 *   replay (tl_replay.h data in flash, looped, one sample every TL_REPLAY_PERIOD_MS) or sensor
 *   (tl_sensor.h) source, so a flood of bytes never starves it.
 * No malloc; all state is static.
 */
#ifndef TL_APP_H
#define TL_APP_H

#ifdef __cplusplus
extern "C" {
#endif

/* Build settings as a header, for the packages whose build systems take no -D flags (the Arduino
 * library, the ESP-IDF component): `tinylstm build` writes tl_config.h beside the sources. Bare-metal
 * and PlatformIO builds pass -D flags and have no such file. */
#if defined(__has_include)
#if __has_include("tl_config.h")
#include "tl_config.h"
#endif
#endif

/* Boot source: 0 host, 1 replay, 2 sensor (TL_PROTO_SOURCE_*). */
#ifndef TL_APP_BOOT_SOURCE
#define TL_APP_BOOT_SOURCE 0
#endif

/* Milliseconds between replayed samples (default 20 ms = 50 Hz); 0 = as fast as the UART allows. */
#ifndef TL_REPLAY_PERIOD_MS
#define TL_REPLAY_PERIOD_MS 20
#endif

/* Call once after tl_hal_init(): sets up the model state and sends HELLO. */
void tl_app_init(void);

/* Call forever: drains received bytes, answers frames, runs replay/sensor steps. When the host feeds
 * the samples and no byte was waiting, it ends with tl_hal_idle(): the core sleeps until the next
 * interrupt on ports that define it, and returns at once elsewhere. */
void tl_app_poll(void);

#ifdef __cplusplus
}
#endif

#endif /* TL_APP_H */
