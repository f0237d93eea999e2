/*
 * CRC-32/ISO-HDLC (the zlib / Ethernet CRC: reflected polynomial 0xEDB88320, init and xorout
 * 0xFFFFFFFF; crc32("123456789") = 0xCBF43926): the one C copy, used by the blob reader and the
 * serial protocol. Python uses zlib.crc32, MicroPython tinylstm_mpy.crc32.
 */
#ifndef TL_CRC32_H
#define TL_CRC32_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @brief   CRC-32 of `len` bytes, continuing from `crc`; 16-entry nibble table (64 bytes of flash).
 * @param   crc   previous value; 0 to start
 * @param   data  bytes (may be NULL when len is 0)
 * @param   len   number of bytes
 * @return  updated CRC; chainable: tl_crc32(tl_crc32(0, a), b) == tl_crc32(0, a | b)
 */
uint32_t tl_crc32(uint32_t crc, const uint8_t *data, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* TL_CRC32_H */
