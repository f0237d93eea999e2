/*
 * memcpy/memset/strlen for -nostdlib builds: gcc emits calls to them for struct copies,
 * array initialisation and loops it recognises. The attribute keeps gcc from turning
 * these very loops into self-calls. --gc-sections drops the unused ones.
 */
#include <stddef.h>
#include <stdint.h>

#define TL_NO_LIBCALLS __attribute__((optimize("no-tree-loop-distribute-patterns")))

TL_NO_LIBCALLS void *memcpy(void *restrict dst, const void *restrict src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    while (n--) *d++ = *s++;
    return dst;
}

TL_NO_LIBCALLS void *memset(void *dst, int c, size_t n)
{
    uint8_t *d = dst;
    while (n--) *d++ = (uint8_t)c;
    return dst;
}

TL_NO_LIBCALLS size_t strlen(const char *s)
{
    size_t n = 0;
    while (s[n]) n++;
    return n;
}
