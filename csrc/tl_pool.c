/*
 * Readout pooling (docs/integer-contract.md, "Readout"): the vector the dense head reads when the model's
 * readout is not the last hidden state. The pool holds one int32 per unit (two int16 words of the state
 * buffer, read and written with memcpy since the buffer is only 2-byte aligned):
 *   mean: S = sat32(S + h), head input = floor(S / n + 1/2);  max: M = max(M, h), head input = M;
 * n = the steps since the last reset, this one included; at n == 1 the pool starts from h.
 */
#include <string.h>

#include "tl_kernels.h"

static int32_t load32(const int16_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static void store32(int16_t *p, int32_t v) { memcpy(p, &v, sizeof v); }

static int32_t sat_add32(int32_t a, int32_t b)
{
    const int64_t s = (int64_t)a + b;
    return s > INT32_MAX ? INT32_MAX : s < INT32_MIN ? INT32_MIN : (int32_t)s;
}

/* floor(s / n + 1/2) for n >= 1, in int32 (C division truncates toward zero). */
static int32_t div_round_half_up(int32_t s, int32_t n)
{
    int32_t q = s / n, r = s - q * n; /* r has the sign of s */
    if (r < 0) {                      /* floor: 0 <= r < n */
        q -= 1;
        r += n;
    }
    return r >= n - r ? q + 1 : q; /* 2r >= n, without overflow */
}

/* One unit: update its pool word with h, return what the head reads. */
static int32_t pool_unit(uint8_t readout, int16_t *word, int32_t h, int32_t n)
{
    int32_t p = h;
    if (n > 1) {
        const int32_t old = load32(word);
        p = readout == TL_READOUT_MEAN ? sat_add32(old, h) : (h > old ? h : old);
    }
    store32(word, p);
    return readout == TL_READOUT_MEAN ? div_round_half_up(p, n) : p;
}

void tl_pool_s8(uint8_t readout, int16_t *pool, const int8_t *h, size_t H, int32_t n, int8_t *out)
{
    for (size_t k = 0; k < H; ++k) out[k] = (int8_t)pool_unit(readout, pool + 2 * k, h[k], n);
}

#ifdef TL_HIDDEN16
void tl_pool_s16(uint8_t readout, int16_t *pool, const int16_t *h, size_t H, int32_t n, int16_t *out)
{
    for (size_t k = 0; k < H; ++k) out[k] = (int16_t)pool_unit(readout, pool + 2 * k, h[k], n);
}
#endif
