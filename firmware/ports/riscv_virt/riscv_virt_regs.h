/*
 * The few devices of QEMU's RISC-V `virt` machine this port touches (hw/riscv/virt.c), and the
 * machine-mode CSRs it reads or writes (RISC-V privileged spec 1.12).
 */
#ifndef TL_RISCV_VIRT_REGS_H
#define TL_RISCV_VIRT_REGS_H

#include <stdint.h>

#define TL_REG8(addr) (*(volatile uint8_t *)(addr))
#define TL_REG32(addr) (*(volatile uint32_t *)(addr))

/* NS16550A UART0, registers one byte apart */
#define UART_BASE 0x10000000u
#define UART_RBR TL_REG8(UART_BASE + 0u) /* receive buffer (read, DLAB 0) */
#define UART_THR TL_REG8(UART_BASE + 0u) /* transmit holding (write, DLAB 0) */
#define UART_DLL TL_REG8(UART_BASE + 0u) /* divisor latch low (DLAB 1) */
#define UART_IER TL_REG8(UART_BASE + 1u) /* interrupt enable (DLAB 0) */
#define UART_DLM TL_REG8(UART_BASE + 1u) /* divisor latch high (DLAB 1) */
#define UART_FCR TL_REG8(UART_BASE + 2u) /* FIFO control (write) */
#define UART_LCR TL_REG8(UART_BASE + 3u)
#define UART_MCR TL_REG8(UART_BASE + 4u)
#define UART_LSR TL_REG8(UART_BASE + 5u)
#define UART_IER_RDA 0x01u     /* interrupt while received data is available */
#define UART_FCR_ENABLE 0x07u  /* FIFOs on, both cleared, RX trigger level 1 byte */
#define UART_LCR_DLAB 0x80u    /* divisor latch access */
#define UART_LCR_8N1 0x03u     /* 8 data bits, no parity, 1 stop bit */
#define UART_MCR_OUT2 0x08u    /* gates the interrupt output on PC-style 16550s */
#define UART_LSR_DR 0x01u      /* data ready */
#define UART_LSR_OE 0x02u      /* overrun: a byte was lost */
#define UART_LSR_THRE 0x20u    /* the transmit holding register (FIFO) takes a byte */
#define UART_LSR_TEMT 0x40u    /* transmitter empty: the last byte has left */
#define UART_CLOCK_HZ 3686400u /* QEMU's virt UART ignores the divisor; a real 16550's usual clock */
#define UART_IRQ 10u           /* UART0's source on the PLIC */

/* Platform-level interrupt controller; context 0 = hart 0 in machine mode */
#define PLIC_BASE 0x0C000000u
#define PLIC_PRIORITY(irq) TL_REG32(PLIC_BASE + 4u * (irq))
#define PLIC_ENABLE0 TL_REG32(PLIC_BASE + 0x2000u) /* sources 0..31, context 0 */
#define PLIC_THRESHOLD0 TL_REG32(PLIC_BASE + 0x200000u)
#define PLIC_CLAIM0 TL_REG32(PLIC_BASE + 0x200004u) /* read: claim; write: complete */

/* Core-local interruptor: mtime, a 64-bit counter at 10 MHz on virt */
#define CLINT_MTIME_LO TL_REG32(0x0200BFF8u)
#define CLINT_MTIME_HI TL_REG32(0x0200BFFCu)
#define MTIME_HZ 10000000u

/* sifive_test finisher: 0x5555 ends QEMU with status 0, (code << 16) | 0x3333 with `code` */
#define TEST_FINISHER TL_REG32(0x00100000u)
#define TEST_FINISHER_PASS 0x5555u
#define TEST_FINISHER_FAIL 0x3333u

/* Machine-mode CSRs */
#define MSTATUS_MIE 0x8u /* global machine interrupt enable */
#define MIE_MEIE 0x800u  /* machine external interrupts (the PLIC) */
#define MCAUSE_INTERRUPT 0x80000000u
#define MCAUSE_MACHINE_EXTERNAL 11u

/* The Zicsr instructions, without asking -march for the extension (which would change the
 * multilib the toolchain links libgcc from). */
#define TL_CSR_READ(csr, out) \
    __asm volatile(".option push\n.option arch, +zicsr\ncsrr %0, " #csr "\n.option pop" : "=r"(out))
#define TL_CSR_WRITE(csr, value) \
    __asm volatile(".option push\n.option arch, +zicsr\ncsrw " #csr ", %0\n.option pop" ::"r"(value))
#define TL_CSR_SET(csr, bits) \
    __asm volatile(".option push\n.option arch, +zicsr\ncsrs " #csr ", %0\n.option pop" ::"r"(bits))
#define TL_CSR_CLEAR(csr, bits) \
    __asm volatile(".option push\n.option arch, +zicsr\ncsrc " #csr ", %0\n.option pop" ::"r"(bits))

#endif /* TL_RISCV_VIRT_REGS_H */
