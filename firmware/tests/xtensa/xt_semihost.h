/*
 * Semihosting of QEMU's Xtensa `-M sim` machine (`-semihosting`): the Xtensa ISS "simcall"
 * interface. xt_simcall is in the startup file (start_windowed.s, start_call0.S).
 */
#ifndef XT_SEMIHOST_H
#define XT_SEMIHOST_H

#include <stddef.h>
#include <stdint.h>

#define XT_SYS_EXIT 1
#define XT_SYS_WRITE 4

/* a2 = call number, a3..a5 = arguments; returns a2 (the call's result). */
int xt_simcall(int nr, int a, int b, int c);

/* Write all n bytes to the host's file descriptor fd (1 = QEMU's stdout); 0 on success. */
static inline int xt_write(int fd, const void *buf, size_t n)
{
    const uint8_t *p = (const uint8_t *)buf;
    while (n > 0) {
        int done = xt_simcall(XT_SYS_WRITE, fd, (int)(uintptr_t)p, (int)n);
        if (done <= 0) return -1;
        p += done;
        n -= (size_t)done;
    }
    return 0;
}

#endif /* XT_SEMIHOST_H */
