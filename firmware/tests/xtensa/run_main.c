/*
 * Kernel-run harness on an Xtensa core in QEMU (tests/test_xtensa.py, host/targets/xtensa.py): steps the
 * generated model (tl_model.h) over the generated samples (tl_replay.h, in the ELF: int8, or an int16-h
 * model's int16 input, stepped with tl_step_s16) and writes, for every step, the outputs (int16 x O), the hidden state (int8 x layers*hidden, int16 for
 * an int16-h model) and the cell state (int16 x layers*hidden), a bidirectional model's backward layers'
 * after the forward ones', raw little-endian, to the semihosting stdout (host/targets/xtensa.py:
 * record_dtype). The host checks every word against codegen/golden.py.
 *
 * Exit status: 0 ok; 2 tl_state_init failed; 3 tl_step (tl_step_s16) failed; 4 a semihosting write failed.
 */
#include <string.h>

#include "tinylstm.h"
#include "tl_model.h"
#include "tl_replay.h"
#include "xt_semihost.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the records are little-endian: build for a little-endian Xtensa core"
#endif

#define CELLS ((size_t)TL_MODEL_NUM_LAYERS * TL_MODEL_HIDDEN_SIZE)
#define Y_BYTES (2u * TL_MODEL_OUTPUT_SIZE)
#if TL_MODEL_HIDDEN_BITS == 16
#define H_WORDS st.h16 /* int16-h model (-DTL_HIDDEN16) */
#else
#define H_WORDS st.h
#endif
#define H_BYTES (CELLS * (TL_MODEL_HIDDEN_BITS / 8u))
#if TL_REPLAY_INPUT_BITS != TL_MODEL_INPUT_BITS
#error "tl_replay.h holds samples of another input type than the model's: write them with host/targets/xtensa.py"
#endif
#if TL_MODEL_INPUT_BITS == 16
#define STEP tl_step_s16 /* an int16-h model's int16 input */
#else
#define STEP tl_step
#endif
#ifndef TL_MODEL_BIDIRECTIONAL /* a tl_model.h generated before the field */
#define TL_MODEL_BIDIRECTIONAL 0
#endif
#define DIRECTIONS (1u + TL_MODEL_BIDIRECTIONAL)
#define RECORD_BYTES (Y_BYTES + DIRECTIONS * (H_BYTES + 2u * CELLS))

int main(void);

int main(void)
{
    static int16_t buf[TL_MODEL_STATE_WORDS];
    static uint8_t record[RECORD_BYTES];
    tl_state_t st;
    int16_t y[TL_MODEL_OUTPUT_SIZE];
    uint32_t t;
    if (tl_state_init(&st, &tl_model, buf, TL_MODEL_STATE_WORDS) != TL_OK) return 2;
    for (t = 0; t < TL_REPLAY_STEPS; ++t) {
        if (STEP(&st, tl_replay_data[t], y) != TL_OK) return 3;
        uint8_t *p = record + Y_BYTES;
        memcpy(record, y, Y_BYTES); /* the cores here are little-endian, like the host's records */
        memcpy(p, H_WORDS, H_BYTES);
        if (TL_MODEL_BIDIRECTIONAL) memcpy(p + H_BYTES, st.hb, H_BYTES); /* int8 h: bidirectional models */
        p += DIRECTIONS * H_BYTES;
        memcpy(p, st.c, 2u * CELLS);
        if (TL_MODEL_BIDIRECTIONAL) memcpy(p + 2u * CELLS, st.cb, 2u * CELLS);
        if (xt_write(1, record, sizeof record) != 0) return 4;
    }
    return 0;
}
