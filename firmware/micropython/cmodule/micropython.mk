# TinyLSTM as a MicroPython user C module, for make-built ports:
#   make -C ports/<port> USER_C_MODULES=/path/to/tinylstm/firmware/micropython
TINYLSTM_MOD_DIR := $(USERMOD_DIR)
TINYLSTM_CSRC := $(abspath $(TINYLSTM_MOD_DIR)/../../../csrc)

SRC_USERMOD_C += $(TINYLSTM_MOD_DIR)/modtinylstm.c
# csrc/tl_sources.txt: the one list of kernel sources every build reads
SRC_USERMOD_LIB_C += $(addprefix $(TINYLSTM_CSRC)/, $(shell cat $(TINYLSTM_CSRC)/tl_sources.txt))

# (x - mean) * mul must not be fused into an FMA: tl_quantize_input is bit-exact only unfused.
# TL_HIDDEN16: run int16-h blobs too (about 2-3 KB more flash on Cortex-M4; firmware/micropython/README.md).
CFLAGS_USERMOD += -I$(TINYLSTM_CSRC) -ffp-contract=off -DTL_HIDDEN16
