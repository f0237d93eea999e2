/*
 * The cell table: one entry per recurrent cell type, indexed by its code, each inside its TL_WITH_CELL guard
 * (a firmware of one model keeps only its cell: TL_ONLY_CELL, tl_kernels.h). Adding a cell: a layer step in
 * its own file (tl_<name>.c), its entry in contract/cells.py (which generates TL_CELL_<NAME> and its shape into
 * tl_contract.h), and one guarded entry here. See docs/integer-contract.md, "Adding a cell".
 */
#include "tl_kernels.h"

const tl_cell_t tl_cells[TL_NUM_CELLS] = {
#if TL_WITH_CELL(TL_CELL_LSTM)
    [TL_CELL_LSTM] = {TL_CELL_LSTM_GATES, TL_CELL_LSTM_HAS_C, TL_CELL_LSTM_BIAS_HN, TL_STEP8(tl_lstm_layer_step),
                      TL_STEP16(tl_lstm_layer_step16), TL_STEPX16(tl_lstm_layer_step_x16)},
#endif
#if TL_WITH_CELL(TL_CELL_GRU)
    [TL_CELL_GRU] = {TL_CELL_GRU_GATES, TL_CELL_GRU_HAS_C, TL_CELL_GRU_BIAS_HN, TL_STEP8(tl_gru_layer_step),
                     TL_STEP16(tl_gru_layer_step16), TL_STEPX16(tl_gru_layer_step_x16)},
#endif
#if TL_WITH_CELL(TL_CELL_RNN)
    [TL_CELL_RNN] = {TL_CELL_RNN_GATES, TL_CELL_RNN_HAS_C, TL_CELL_RNN_BIAS_HN, TL_STEP8(tl_rnn_layer_step),
                     TL_STEP16(tl_rnn_layer_step16), TL_STEPX16(tl_rnn_layer_step_x16)},
#endif
};
