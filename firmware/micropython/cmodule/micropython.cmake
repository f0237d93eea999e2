# TinyLSTM as a MicroPython user C module, for CMake-built ports (esp32, rp2):
#   make USER_C_MODULES=/path/to/tinylstm/firmware/micropython/cmodule/micropython.cmake
add_library(usermod_tinylstm INTERFACE)

set(TINYLSTM_CSRC ${CMAKE_CURRENT_LIST_DIR}/../../../csrc)

target_sources(usermod_tinylstm INTERFACE
    ${CMAKE_CURRENT_LIST_DIR}/modtinylstm.c
    ${TINYLSTM_CSRC}/tl_api.c
    ${TINYLSTM_CSRC}/tl_blob.c
    ${TINYLSTM_CSRC}/tl_dense.c
    ${TINYLSTM_CSRC}/tl_dot.c
    ${TINYLSTM_CSRC}/tl_gru.c
    ${TINYLSTM_CSRC}/tl_input.c
    ${TINYLSTM_CSRC}/tl_lstm.c
)

target_include_directories(usermod_tinylstm INTERFACE ${CMAKE_CURRENT_LIST_DIR} ${TINYLSTM_CSRC})

# (x - mean) * mul must not be fused into an FMA: tl_quantize_input is bit-exact only unfused.
set_source_files_properties(${TINYLSTM_CSRC}/tl_input.c PROPERTIES COMPILE_OPTIONS "-ffp-contract=off")

target_link_libraries(usermod INTERFACE usermod_tinylstm)
