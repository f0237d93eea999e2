/*
 * TinyLSTM model blob (.tlm) reader: validates a blob and describes it with the same
 * tl_model_t the kernel runs, pointing into the blob (zero-copy). Layout: docs/model-blob.md.
 *
 *     tl_model_t model; tl_layer_t layers[TL_MAX_LAYERS];
 *     if (tl_blob_parse(blob, len, &model, layers) != TL_OK) { ...reject... }
 *
 * The blob must start on a 4-byte boundary and outlive the model; it is never written.
 */
#ifndef TL_BLOB_H
#define TL_BLOB_H

#include "tinylstm.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Status returned by tl_blob_parse for a malformed, truncated, corrupted or wrong-version blob. */
#define TL_ERR_BLOB ((tl_status_t)-5)

#define TL_BLOB_FORMAT_VERSION 1
#define TL_BLOB_HEADER_SIZE 40
/** Largest |bias| a blob may carry (int32 accumulator headroom, as codegen's BIAS_LIMIT). */
#define TL_BLOB_BIAS_LIMIT 0x40000000u

/**
 * Check `blob` (`len` bytes; bytes past the header's total size are ignored) and fill `model`
 * and `layers` [TL_MAX_LAYERS] with pointers into it. Checks magic, format and kernel version,
 * CRC-32, every section's offset, size and alignment, |bias| <= 2^30, finite
 * normalisation constants, then tl_model_check.
 * @return TL_OK, TL_ERR_ARG (NULL pointer), TL_ERR_BLOB, or TL_ERR_MODEL (tl_model_check failed).
 */
tl_status_t tl_blob_parse(const uint8_t *blob, size_t len, tl_model_t *model, tl_layer_t *layers);

/** CRC-32/ISO-HDLC (the zlib CRC) of `len` bytes, continuing from `crc` (start with 0). */
uint32_t tl_blob_crc32(uint32_t crc, const uint8_t *data, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* TL_BLOB_H */
