/*
 * string.h for the Xtensa builds (tests/test_xtensa.py): neither clang's Xtensa target nor
 * xtensa-lx106-elf-gcc has a C library here. The functions the kernel, the app and the
 * compilers' own code generation use; the run harness links them from xt_rt.c.
 */
#ifndef XT_STRING_H
#define XT_STRING_H

#include <stddef.h>

void *memcpy(void *restrict dst, const void *restrict src, size_t n);
void *memset(void *dst, int c, size_t n);
size_t strlen(const char *s);

#endif /* XT_STRING_H */
