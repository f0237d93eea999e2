# TinyLSTM as a MicroPython user C module, for CMake-built ports (esp32, rp2):
#   make USER_C_MODULES=/path/to/tinylstm/firmware/micropython/cmodule/micropython.cmake
add_library(usermod_tinylstm INTERFACE)

set(TINYLSTM_CSRC ${CMAKE_CURRENT_LIST_DIR}/../../../csrc)

# csrc/tl_sources.txt: the one list of kernel sources every build reads
file(STRINGS ${TINYLSTM_CSRC}/tl_sources.txt TINYLSTM_SOURCES)
list(TRANSFORM TINYLSTM_SOURCES PREPEND ${TINYLSTM_CSRC}/)

target_sources(usermod_tinylstm INTERFACE
    ${CMAKE_CURRENT_LIST_DIR}/modtinylstm.c
    ${TINYLSTM_SOURCES}
)

target_include_directories(usermod_tinylstm INTERFACE ${CMAKE_CURRENT_LIST_DIR} ${TINYLSTM_CSRC})

# (x - mean) * mul must not be fused into an FMA: tl_quantize_input is bit-exact only unfused.
target_compile_options(usermod_tinylstm INTERFACE -ffp-contract=off)

# Run int16-h blobs too (about 2-3 KB more flash on Cortex-M4; firmware/micropython/README.md).
target_compile_definitions(usermod_tinylstm INTERFACE TL_HIDDEN16)

target_link_libraries(usermod INTERFACE usermod_tinylstm)
