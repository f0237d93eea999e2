/*
 * TinyLSTM as a dynamic native module (.mpy): the same binding (../cmodule/modtinylstm.c) and
 * the same kernel sources (csrc/), compiled as one translation unit so every object file stays
 * inside this build directory. Registers tinylstm.Model at import time.
 */
#include "py/dynruntime.h"

#include "../../../csrc/tl_api.c"
#include "../../../csrc/tl_blob.c"
#include "../../../csrc/tl_dense.c"
#include "../../../csrc/tl_dot.c"
#include "../../../csrc/tl_gru.c"
#include "../../../csrc/tl_input.c"
#include "../../../csrc/tl_lstm.c"
#include "../cmodule/modtinylstm.c"

mp_obj_full_type_t tinylstm_model_type;
mp_map_elem_t tinylstm_model_locals_table[5];
static MP_DEFINE_CONST_DICT(tinylstm_model_locals, tinylstm_model_locals_table);

mp_obj_t mpy_init(mp_obj_fun_bc_t *self, size_t n_args, size_t n_kw, mp_obj_t *args)
{
    MP_DYNRUNTIME_INIT_ENTRY

    tinylstm_model_type.base.type = (void *)&mp_type_type;
    tinylstm_model_type.name = MP_QSTR_Model;
    MP_OBJ_TYPE_SET_SLOT(&tinylstm_model_type, make_new, tinylstm_model_make_new, 0);
    mp_map_elem_t *t = tinylstm_model_locals_table;
    t[0] = (mp_map_elem_t){MP_OBJ_NEW_QSTR(MP_QSTR_step), MP_OBJ_FROM_PTR(&tinylstm_model_step_obj)};
    t[1] = (mp_map_elem_t){MP_OBJ_NEW_QSTR(MP_QSTR_run), MP_OBJ_FROM_PTR(&tinylstm_model_run_obj)};
    t[2] = (mp_map_elem_t){MP_OBJ_NEW_QSTR(MP_QSTR_reset), MP_OBJ_FROM_PTR(&tinylstm_model_reset_obj)};
    t[3] = (mp_map_elem_t){MP_OBJ_NEW_QSTR(MP_QSTR_state), MP_OBJ_FROM_PTR(&tinylstm_model_state_obj)};
    t[4] = (mp_map_elem_t){MP_OBJ_NEW_QSTR(MP_QSTR_info), MP_OBJ_FROM_PTR(&tinylstm_model_info_obj)};
    MP_OBJ_TYPE_SET_SLOT(&tinylstm_model_type, locals_dict, (void *)&tinylstm_model_locals, 1);

    mp_store_global(MP_QSTR_Model, MP_OBJ_FROM_PTR(&tinylstm_model_type));
    mp_store_global(MP_QSTR_KERNEL_VERSION, MP_OBJ_NEW_SMALL_INT(TL_KERNEL_VERSION));

    MP_DYNRUNTIME_INIT_EXIT
}
