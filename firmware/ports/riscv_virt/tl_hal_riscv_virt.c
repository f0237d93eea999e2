/*
 * tl_hal.h for RV32IMC on QEMU's virt machine (the ESP32-C3's instruction set), bare metal,
 * machine mode only.
 *
 * UART: the NS16550A at 0x10000000, FIFOs on, an interrupt per received byte (trigger level 1)
 * through the PLIC (source 10) into the ring buffer of ports/common/tl_rx_ring.h; TX polled with
 * a bound. QEMU feeds a 16550 only while its FIFO has room, so no byte is lost before the
 * interrupt drains it; LSR.OE still counts overruns.
 * Time: tl_hal_millis() from the CLINT's mtime (10 MHz on virt); tl_hal_cycles() reads mcycle.
 * QEMU counts mcycle in host clock ticks (or instructions with -icount), so cycle figures from
 * QEMU measure QEMU, not a chip: instruction counts come from unicorn (benchmarks/).
 * Watchdog: none (virt has none). Faults: every exception (illegal instruction, misaligned or
 * faulting access, ebreak, ...) calls the reporter registered with tl_hal_on_fault() with mepc
 * and mcause, then ends QEMU with status 128 + mcause (131 = breakpoint, what __builtin_trap
 * raises).
 *
 * Build options:
 *   TL_UART_RX_BUF             RX ring buffer size (ports/common/tl_rx_ring.h), announced to the
 *                              host as HELLO.rx_capacity
 *   TL_BAUD                    baud rate, default 115200 (8N1; QEMU ignores the divisor)
 */
#include "riscv_virt_regs.h"
#include "tl_hal.h"
#include "tl_rx_ring.h"

#ifndef TL_BAUD
#define TL_BAUD 115200u
#endif

/* Polls of LSR before a byte counts as stuck: at least 16 byte times at TL_BAUD on a core of up
 * to 1 GHz, each poll taking at least one cycle. */
#define TX_SPIN_LIMIT ((1000000000u / TL_BAUD) * 10u * 16u)

void tl_riscv_trap(void);

static tl_rx_ring_t rx;
static int has_mcycle;
static void (*fault_report)(uint32_t pc, uint32_t exception);

static uint64_t mtime(void)
{
    uint32_t hi, lo;
    do {
        hi = CLINT_MTIME_HI;
        lo = CLINT_MTIME_LO;
    } while (hi != CLINT_MTIME_HI); /* the low word wrapped between the reads */
    return ((uint64_t)hi << 32) | lo;
}

static uint32_t mcycle(void)
{
    uint32_t v;
    TL_CSR_READ(mcycle, v);
    return v;
}

static int cycle_counter_runs(void)
{
    uint32_t start = mcycle();
    for (volatile int i = 0; i < 16; i++) {}
    return mcycle() != start;
}

void tl_hal_init(void)
{
    uint32_t divisor = UART_CLOCK_HZ / (16u * TL_BAUD);
    UART_IER = 0;
    UART_LCR = UART_LCR_DLAB;
    UART_DLL = (uint8_t)divisor;
    UART_DLM = (uint8_t)(divisor >> 8);
    UART_LCR = UART_LCR_8N1;
    UART_FCR = UART_FCR_ENABLE;
    UART_MCR = UART_MCR_OUT2;
    while (UART_LSR & UART_LSR_DR) (void)UART_RBR; /* nothing from before the reset */
    UART_IER = UART_IER_RDA;

    PLIC_PRIORITY(UART_IRQ) = 1;
    PLIC_THRESHOLD0 = 0;
    PLIC_ENABLE0 = 1u << UART_IRQ;

    has_mcycle = cycle_counter_runs();
    TL_CSR_WRITE(mtvec, (uint32_t)(uintptr_t)&tl_riscv_trap); /* direct mode: the handler is 4-aligned */
    TL_CSR_SET(mie, MIE_MEIE);
    TL_CSR_SET(mstatus, MSTATUS_MIE);
}

static void uart_receive(void)
{
    uint8_t lsr;
    while ((lsr = UART_LSR) & UART_LSR_DR) {
        if (lsr & UART_LSR_OE) rx.lost++; /* a byte before this one was overwritten in the UART */
        tl_rx_ring_push(&rx, UART_RBR);
    }
}

/* Every trap: the PLIC's interrupts are served, anything else is a fault. */
__attribute__((interrupt("machine"), aligned(4))) void tl_riscv_trap(void)
{
    uint32_t cause, pc;
    TL_CSR_READ(mcause, cause);
    if (cause == (MCAUSE_INTERRUPT | MCAUSE_MACHINE_EXTERNAL)) {
        uint32_t irq;
        while ((irq = PLIC_CLAIM0) != 0u) {
            if (irq == UART_IRQ) uart_receive();
            PLIC_CLAIM0 = irq; /* complete */
        }
        return;
    }
    TL_CSR_READ(mepc, pc);
    if (fault_report != 0) fault_report(pc, cause);
    tl_hal_exit(128 + (int)(cause & 0x7Fu));
}

int tl_hal_getc(void) { return tl_rx_ring_pop(&rx); }

/* WFI with mstatus.MIE clear: it still ends when an interrupt enabled in mie is pending (the
 * privileged spec), so a byte that arrives after the check wakes the hart and is served once MIE is
 * set again. No timer interrupt is enabled: only a received byte ends the wait. */
void tl_hal_idle(void)
{
    TL_CSR_CLEAR(mstatus, MSTATUS_MIE);
    if (tl_rx_ring_empty(&rx)) __asm volatile("wfi" ::: "memory");
    TL_CSR_SET(mstatus, MSTATUS_MIE);
}

uint16_t tl_hal_rx_capacity(void) { return tl_rx_ring_capacity(); }

/* Wait (boundedly) for an LSR flag; 0 once it is set, -1 if it never came. */
static int wait_lsr(uint8_t flag)
{
    uint32_t spins = 0;
    while (!(UART_LSR & flag)) {
        if (++spins >= TX_SPIN_LIMIT) return -1;
    }
    return 0;
}

int tl_hal_write(const uint8_t *buf, size_t len)
{
    while (len--) {
        if (wait_lsr(UART_LSR_THRE) != 0) return -1;
        UART_THR = *buf++;
    }
    return 0;
}

/* The low 32 bits of n / d for d < 2^16, by 16-bit long division: each partial dividend stays
 * below 2^32, so the core's 32-bit divu does it (libgcc's __udivdi3 would add 1 KB). */
static uint32_t div64_by_u16(uint64_t n, uint32_t d)
{
    uint32_t r = 0, q = 0;
    for (int shift = 48; shift >= 0; shift -= 16) {
        uint32_t part = (r << 16) | (uint32_t)((n >> shift) & 0xFFFFu);
        q = (q << 16) | part / d;
        r = part % d;
    }
    return q;
}

uint32_t tl_hal_millis(void) { return div64_by_u16(mtime(), MTIME_HZ / 1000u); }

uint32_t tl_hal_cycles(void) { return has_mcycle ? mcycle() : 0u; }

int tl_hal_has_cycle_counter(void) { return has_mcycle; }

uint32_t tl_hal_rx_overflows(void) { return rx.lost; }

void tl_hal_watchdog_refresh(void) {}

int tl_hal_reset_was_watchdog(void) { return 0; }

void tl_hal_on_fault(void (*report)(uint32_t pc, uint32_t exception)) { fault_report = report; }

const char *tl_hal_board_name(void) { return "qemu-riscv32"; }

void tl_hal_exit(int code)
{
    (void)wait_lsr(UART_LSR_TEMT); /* let the last frame leave, but never hang here */
    TEST_FINISHER = code == 0 ? TEST_FINISHER_PASS : ((uint32_t)code << 16) | TEST_FINISHER_FAIL;
    for (;;) {}
}
