/*
 * string.h for toolchains that ship no C library (riscv64-unknown-elf-gcc without picolibc,
 * clang's Xtensa target, xtensa-lx106-elf-gcc): the three functions the kernel, the app and the
 * compilers' own code generation use, implemented in ports/common/libc_min.c. With
 * -ffreestanding (gcc) or -nostdlibinc (clang) the compiler provides <stdint.h> and <stddef.h>.
 * Toolchains with a libc (arm-none-eabi + newlib) never see this directory.
 */
#ifndef TL_FREESTANDING_STRING_H
#define TL_FREESTANDING_STRING_H

#include <stddef.h>

void *memcpy(void *restrict dst, const void *restrict src, size_t n);
void *memset(void *dst, int c, size_t n);
size_t strlen(const char *s);

#endif /* TL_FREESTANDING_STRING_H */
