# TinyLSTM as a MicroPython user C module, for make-built ports:
#   make -C ports/<port> USER_C_MODULES=/path/to/tinylstm/firmware/micropython
TINYLSTM_MOD_DIR := $(USERMOD_DIR)
TINYLSTM_CSRC := $(abspath $(TINYLSTM_MOD_DIR)/../../../csrc)

SRC_USERMOD_C += $(TINYLSTM_MOD_DIR)/modtinylstm.c
SRC_USERMOD_LIB_C += $(addprefix $(TINYLSTM_CSRC)/, \
	tl_api.c tl_blob.c tl_dense.c tl_dot.c tl_gru.c tl_input.c tl_lstm.c)

CFLAGS_USERMOD += -I$(TINYLSTM_CSRC)
# (x - mean) * mul must not be fused into an FMA: tl_quantize_input is bit-exact only unfused.
$(BUILD)/$(TINYLSTM_CSRC)/tl_input.o: CFLAGS += -ffp-contract=off
