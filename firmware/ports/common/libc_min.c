/*
 * memcpy/memset/strlen for -nostdlib builds (the bare-metal ports and the Xtensa runs of
 * tests/test_xtensa.py): compilers emit calls to them for struct copies, array initialisation
 * and loops they recognise. The attribute keeps gcc from turning these very loops into
 * self-calls (clang does not for these names, and does not know the attribute). `used` keeps them
 * through link-time optimisation, which would otherwise drop them before the code generation that
 * emits the calls (host/boards/toolchain.py, LTO_FLAGS); --gc-sections still drops the unused ones.
 */
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) && !defined(__clang__)
#define TL_NO_LIBCALLS __attribute__((used, optimize("no-tree-loop-distribute-patterns")))
#else
#define TL_NO_LIBCALLS __attribute__((used))
#endif

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
