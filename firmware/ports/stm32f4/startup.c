/*
 * Startup for STM32F405/F407: vector table, reset handler, fault handler.
 * Reset: enable the FPU, copy .data from flash, zero .bss, run main(), then tl_hal_exit().
 * Every unexpected exception (faults, NMI, unused interrupts) goes to Fault_Handler, which
 * hands the stacked registers to tl_stm32f4_fault() (tl_hal_stm32f4.c): report, then reset.
 * The table ends at the last interrupt the port can enable (TL_STM32F4_IRQS): the later ones
 * stay disabled from reset, so their entries would be dead flash (43 words on the F405).
 */
#include <stdint.h>

#include "stm32f4_regs.h"
#include "tl_hal.h"

/* Symbols from stm32f4.ld */
extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;

int main(void);
void tl_stm32f4_fault(const uint32_t *frame, uint32_t exception) __attribute__((noreturn));

void Reset_Handler(void);
void Fault_Handler(void);
#define D Fault_Handler
void SysTick_Handler(void) __attribute__((weak, alias("Fault_Handler")));
void USART1_IRQHandler(void) __attribute__((weak, alias("Fault_Handler")));
void USART2_IRQHandler(void) __attribute__((weak, alias("Fault_Handler")));

typedef void (*tl_vector_t)(void);

#define D8 D, D, D, D, D, D, D, D

/* 16 Cortex-M4 exceptions + the first TL_STM32F4_IRQS of the 82 STM32F405/F407 interrupts (RM0090 table 61). */
__attribute__((section(".isr_vector"), used)) const tl_vector_t tl_vectors[16 + TL_STM32F4_IRQS] = {
    (tl_vector_t)&_estack,
    Reset_Handler,
    D,
    D, /* NMI, HardFault */
    D,
    D,
    D,
    0,
    0,
    0,
    0, /* MemManage, BusFault, UsageFault, reserved x4 */
    D,
    D,
    0,
    D,
    SysTick_Handler, /* SVCall, DebugMon, reserved, PendSV, SysTick */
    D8,
    D8,
    D8,
    D8, /* IRQ 0..31 */
    D,
    D,
    D,
    D,
    D,                 /* IRQ 32..36 */
    USART1_IRQHandler, /* IRQ 37 */
    USART2_IRQHandler, /* IRQ 38 */
};

#undef D8
#undef D

/* The loops must stay loops: gcc would otherwise turn them into memcpy/memset calls. */
__attribute__((noreturn, optimize("no-tree-loop-distribute-patterns"))) void Reset_Handler(void)
{
    SCB_CPACR |= SCB_CPACR_CP10_CP11_FULL;
    __asm volatile("dsb\n\tisb" ::: "memory");

    const uint32_t *src = &_sidata;
    for (uint32_t *dst = &_sdata; dst < &_edata;) *dst++ = *src++;
    for (uint32_t *dst = &_sbss; dst < &_ebss;) *dst++ = 0;

    tl_hal_exit(main());
}

/* Unexpected exception: pass the stacked frame (MSP or PSP, from EXC_RETURN bit 2) and the
 * exception number (IPSR) to the port, which reports the fault and resets the board. */
__attribute__((naked)) void Fault_Handler(void)
{
    __asm volatile("tst lr, #4\n\t"
                   "ite eq\n\t"
                   "mrseq r0, msp\n\t"
                   "mrsne r0, psp\n\t"
                   "mrs r1, ipsr\n\t"
                   "b tl_stm32f4_fault\n\t");
}
