/* int8 x int8 dot product, the inner loop of every gate row and of the head. */
#include "tl_kernels.h"

int32_t tl_dot_s8(const int8_t *w, const int8_t *a, size_t n)
{
    int32_t acc = 0;
    for (size_t k = 0; k < n; ++k) acc += (int32_t)w[k] * a[k];
    return acc;
}
