/*
 * TinyLSTM model blob (.tlm) reader: validates a blob and describes it with the same
 * tl_model_t the kernel runs, pointing into the blob (zero-copy). Layout: docs/model-blob.md.
 *
 *     tl_model_t model; tl_layer_t layers[TL_BLOB_MAX_LAYERS];
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

/** Status returned by tl_blob_parse for a malformed, truncated, corrupted or wrong-version blob.
 * (TL_BLOB_FORMAT_VERSION and TL_BLOB_HEADER_SIZE come from tl_contract.h.) */
#define TL_BLOB_ERR ((tl_status_t) - 5)

/** Layers a blob's model may describe: TL_MAX_LAYERS per direction, two directions for a bidirectional model.
 * The `layers` array given to tl_blob_parse must hold this many. */
#define TL_BLOB_MAX_LAYERS (2 * TL_MAX_LAYERS)

/**
 * Check `blob` (`len` bytes; bytes past the header's total size are ignored) and fill `model`
 * and `layers` [TL_BLOB_MAX_LAYERS] with pointers into it: the forward layers first, then a bidirectional
 * model's backward ones (model->backward = layers + num_layers, model->window its window; NULL and 0 for a
 * unidirectional model). Checks magic, format and kernel version,
 * CRC-32, every section's offset, size and alignment, |bias| <= TL_BIAS_LIMIT, finite
 * normalisation constants, a window of at least one step, then tl_model_check.
 * @return TL_OK, TL_ERR_ARG (NULL pointer), TL_BLOB_ERR, or TL_ERR_MODEL (tl_model_check failed).
 */
tl_status_t tl_blob_parse(const uint8_t *blob, size_t len, tl_model_t *model, tl_layer_t *layers);

#ifdef __cplusplus
}
#endif

#endif /* TL_BLOB_H */
