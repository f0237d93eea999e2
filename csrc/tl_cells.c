/*
 * The cell table: one line per recurrent cell type, indexed by its code. Adding a cell: a layer step
 * in its own file (tl_<name>.c), its entry in codegen/cells.py (which generates TL_CELL_<NAME> and its
 * shape into tl_contract.h), and one line here. See docs/integer-contract.md, "Adding a cell".
 */
#include "tl_kernels.h"

const tl_cell_t tl_cells[TL_NUM_CELLS] = {
    [TL_CELL_LSTM] = {TL_CELL_LSTM_GATES, TL_CELL_LSTM_HAS_C, TL_CELL_LSTM_BIAS_HN, tl_lstm_layer_step,
                      TL_STEP16(tl_lstm_layer_step16)},
    [TL_CELL_GRU] = {TL_CELL_GRU_GATES, TL_CELL_GRU_HAS_C, TL_CELL_GRU_BIAS_HN, tl_gru_layer_step,
                     TL_STEP16(tl_gru_layer_step16)},
};
