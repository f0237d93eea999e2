/*
 * Test harness: streams samples from stdin (the model's input: int8, or an int16-h model's int16, raw
 * little-endian) through the kernel and writes, for every step, the outputs, the hidden state (widened to
 * int16) and the cell state to stdout (raw little-endian). Built by tests/sanitized_harness.py with the
 * sanitizers on.
 */
#include <math.h>
#include <stdio.h>

#include "tl_model.h"

#if TL_MODEL_INPUT_BITS == 16
typedef int16_t input_t;
#define STEP tl_step_s16
#define QUANTIZE tl_quantize_input_s16
#else
typedef int8_t input_t;
#define STEP tl_step
#define QUANTIZE tl_quantize_input
#endif

int main(void)
{
    static int16_t buf[TL_MODEL_STATE_WORDS];
    tl_state_t st;
    if (tl_state_init(&st, &tl_model, buf, TL_MODEL_STATE_WORDS) != TL_OK) return 2;
    input_t x[TL_MODEL_INPUT_SIZE];
    int16_t y[TL_MODEL_OUTPUT_SIZE];
    const size_t cells = (size_t)TL_MODEL_NUM_LAYERS * TL_MODEL_HIDDEN_SIZE;
    while (fread(x, 1, sizeof x, stdin) == sizeof x) {
        if (STEP(&st, x, y) != TL_OK) return 3;
        fwrite(y, sizeof y[0], TL_MODEL_OUTPUT_SIZE, stdout);
        for (size_t k = 0; k < cells; ++k) {
            const int16_t h = st.h16 ? st.h16[k] : st.h[k];
            fwrite(&h, sizeof h, 1, stdout);
        }
        fwrite(st.c, sizeof st.c[0], cells, stdout);
    }
    float nan_sample[TL_MODEL_INPUT_SIZE] = {0};
    nan_sample[0] = NAN;
    return QUANTIZE(&tl_model, nan_sample, x) == TL_ERR_INPUT ? 0 : 4;
}
