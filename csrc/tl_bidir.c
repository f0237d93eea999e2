/*
 * The backward direction of a bidirectional window model (docs/integer-contract.md, "Bidirectional window
 * models"): at the window's last sample, the backward layers run over the buffered window's steps in reverse,
 * from the zero state of the reset, and the head's input becomes [forward readout ; backward readout].
 */
#include <string.h>

#include "tl_kernels.h"

void tl_bidir_backward(tl_state_t *s, const int8_t *v_f)
{
    const tl_model_t *m = s->model;
    const size_t H = m->hidden_size, k = m->stack > 1 ? m->stack : 1;
    /* S = window / k: the forward steps since the reset, at the window's last sample (no divide: lx106 has none) */
    const size_t width = k * m->input_size, steps = s->steps;
    const tl_layer_step_fn layer_step = tl_cells[m->cell].layer_step;
    const int8_t *in = s->hb + (size_t)(m->num_layers - 1) * H;
    memcpy(s->head2, v_f, H);
    for (size_t t = 0; t < steps; ++t) {
        in = s->window + (steps - 1 - t) * width;
        for (size_t n = 0; n < m->num_layers; ++n) {
            int8_t *h = s->hb + n * H;
            layer_step(&m->backward[n], m->act_table, in, h, s->scratch, s->cb + n * H);
            memcpy(h, s->scratch, H);
            in = h;
        }
        if (TL_WITH_POOL && s->pool_b) {
            tl_pool_s8(m->readout, s->pool_b, in, H, (int32_t)(t + 1), s->scratch);
            in = s->scratch;
        }
    }
    memcpy(s->head2 + H, in, H);
}
