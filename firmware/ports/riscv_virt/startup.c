/*
 * Startup for RV32IMC on QEMU's virt machine (-bios none: the core starts at 0x80000000 in
 * machine mode). _start sets the stack pointer; tl_riscv_reset copies .data from its flash image,
 * zeroes .bss, runs main() and then tl_hal_exit(). Traps go to tl_riscv_trap (tl_hal_riscv_virt.c),
 * which mtvec points to once tl_hal_init() has run.
 */
#include <stdint.h>

#include "tl_hal.h"

/* Symbols from riscv_virt.ld */
extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;

int main(void);
void _start(void);
void tl_riscv_reset(void) __attribute__((noreturn));

__attribute__((naked, section(".text.start"))) void _start(void)
{
    __asm volatile(".option push\n"
                   ".option norelax\n"
                   "la sp, _estack\n"
                   ".option pop\n"
                   "j tl_riscv_reset\n");
}

/* The loops must stay loops: gcc would otherwise turn them into memcpy/memset calls. `used`: only _start's
 * assembly calls it, which link-time optimisation does not see. */
__attribute__((used, noreturn, optimize("no-tree-loop-distribute-patterns"))) void tl_riscv_reset(void)
{
    const uint32_t *src = &_sidata;
    for (uint32_t *dst = &_sdata; dst < &_edata;) *dst++ = *src++;
    for (uint32_t *dst = &_sbss; dst < &_ebss;) *dst++ = 0;
    tl_hal_exit(main());
}
