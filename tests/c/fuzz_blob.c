/*
 * Test harness for csrc/tl_blob.c, built by tests/test_blob*.py with the sanitizers on.
 *
 *   fuzz_blob run BLOB   streams int8 samples from stdin through the parsed model and writes,
 *                        per step, outputs, hidden and cell state (raw little-endian; a bidirectional
 *                        model's backward hidden and cell state after them) to stdout.
 *   fuzz_blob fuzz       reads records (u32 LE length + bytes) from stdin; each blob lives in
 *                        a heap block of exactly its length (so ASan sees any overread), is
 *                        parsed and, if accepted, stepped a few times. Prints one status per line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tl_blob.h"

static uint8_t *read_exact(FILE *f, size_t len)
{
    uint8_t *p = malloc(len ? len : 1);
    if (p && fread(p, 1, len, f) != len) {
        free(p);
        return NULL;
    }
    return p;
}

static int run(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 2;
    fseek(f, 0, SEEK_END);
    size_t len = (size_t)ftell(f);
    rewind(f);
    uint8_t *blob = read_exact(f, len);
    fclose(f);
    if (!blob) return 2;
    tl_model_t m;
    tl_layer_t layers[TL_BLOB_MAX_LAYERS];
    tl_status_t st = tl_blob_parse(blob, len, &m, layers);
    if (st != TL_OK) {
        fprintf(stderr, "tl_blob_parse: %d\n", (int)st);
        free(blob);
        return 3;
    }
    size_t words = tl_state_words(&m), cells = (size_t)m.num_layers * m.hidden_size;
    int16_t *buf = calloc(words, sizeof *buf), *y = calloc(m.output_size, sizeof *y);
    int8_t *x = calloc(m.input_size, 1);
    tl_state_t s;
    if (!buf || !y || !x || tl_state_init(&s, &m, buf, words) != TL_OK) return 4;
    while (fread(x, 1, m.input_size, stdin) == m.input_size) {
        if (tl_step(&s, x, y) != TL_OK) return 5;
        fwrite(y, sizeof *y, m.output_size, stdout);
        fwrite(s.h, 1, cells, stdout);
        fwrite(s.c, sizeof *s.c, cells, stdout);
        if (s.hb) { /* a bidirectional model: its backward layers' state after the forward one */
            fwrite(s.hb, 1, cells, stdout);
            fwrite(s.cb, sizeof *s.cb, cells, stdout);
        }
    }
    free(buf);
    free(y);
    free(x);
    free(blob);
    return 0;
}

static int fuzz(void)
{
    uint8_t hdr[4];
    while (fread(hdr, 1, 4, stdin) == 4) {
        size_t len = (size_t)hdr[0] | (size_t)hdr[1] << 8 | (size_t)hdr[2] << 16 | (size_t)hdr[3] << 24;
        uint8_t *blob = read_exact(stdin, len);
        if (!blob) return 2;
        tl_model_t m;
        tl_layer_t layers[TL_BLOB_MAX_LAYERS];
        tl_status_t st = tl_blob_parse(blob, len, &m, layers);
        if (st == TL_OK) {
            size_t words = tl_state_words(&m);
            int16_t *buf = calloc(words, sizeof *buf), *y = calloc(m.output_size, sizeof *y);
            int8_t *x = calloc(m.input_size, 1);
            float *xf = calloc(m.input_size, sizeof *xf);
            tl_state_t s;
            if (!buf || !y || !x || !xf || tl_state_init(&s, &m, buf, words) != TL_OK) return 4;
            for (int t = 0; t < 4; ++t) {
                for (size_t k = 0; k < m.input_size; ++k) {
                    x[k] = (int8_t)(t % 2 ? 127 - (int)k : -128 + (int)k);
                    xf[k] = (float)(t - 2) * 3.5f;
                }
                if (tl_step(&s, x, y) != TL_OK) return 5;
                if (tl_quantize_input(&m, xf, x) != TL_OK) return 6;
            }
            free(buf);
            free(y);
            free(x);
            free(xf);
        }
        printf("%d\n", (int)st);
        free(blob);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "run") == 0) return run(argv[2]);
    if (argc == 2 && strcmp(argv[1], "fuzz") == 0) return fuzz();
    fprintf(stderr, "usage: fuzz_blob run BLOB < int8-samples | fuzz_blob fuzz < records\n");
    return 1;
}
