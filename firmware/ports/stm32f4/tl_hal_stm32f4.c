/*
 * tl_hal.h for STM32F405/F407 (and the UART/timer-compatible F401/F411/F446), bare metal.
 *
 * Clock: whatever runs at reset (HSI 16 MHz, all bus prescalers 1). Nothing waits for
 * HSE/PLL, so the port also runs under QEMU, which has no RCC model.
 *
 * Build options:
 *   TL_STM32_USART=1 (default) USART1, TX PA9 / RX PA10, AF7, IRQ 37
 *   TL_STM32_USART=2           USART2, TX PA2 / RX PA3,  AF7, IRQ 38 (Nucleo ST-LINK VCP)
 *   TL_BAUD                    baud rate, default 115200 (8N1)
 *   TL_UART_RX_BUF             RX ring buffer size (ports/common/tl_rx_ring.h), announced to the
 *                              host as HELLO.rx_capacity
 *   TL_CPU_HZ                  SysTick clock, default 16 MHz (168 MHz with TL_QEMU)
 *   TL_WATCHDOG_MS             independent watchdog timeout, default 2000 ms (1..4095); 0 = off.
 *                              Off with TL_QEMU: QEMU's netduinoplus2 does not model the IWDG.
 *   TL_QEMU                    board name "qemu-stm32f405", QEMU's fixed 168 MHz SYSCLK
 *   TL_SEMIHOSTING             tl_hal_exit() ends QEMU through semihosting
 *
 * Faults: startup.c sends every unexpected exception to tl_stm32f4_fault(), which calls the
 * reporter registered with tl_hal_on_fault() (the app sends ERROR FAULT) and resets the chip
 * (ends QEMU with status 128 + exception under semihosting).
 */
#include "tl_hal.h"

#include "stm32f4_regs.h"
#include "tl_rx_ring.h"

#ifndef TL_STM32_USART
#define TL_STM32_USART 1
#endif
#ifndef TL_BAUD
#define TL_BAUD 115200u
#endif
#define TL_PCLK_HZ 16000000u /* HSI, APB1/APB2 prescaler 1 after reset */
#ifndef TL_CPU_HZ
#ifdef TL_QEMU
#define TL_CPU_HZ 168000000u /* QEMU's netduinoplus2 clocks the core at 168 MHz regardless of RCC */
#else
#define TL_CPU_HZ 16000000u
#endif
#endif

#ifndef TL_WATCHDOG_MS
#ifdef TL_QEMU
#define TL_WATCHDOG_MS 0u
#else
#define TL_WATCHDOG_MS 2000u
#endif
#endif

#if TL_WATCHDOG_MS > 4095
#error "TL_WATCHDOG_MS must be at most 4095 (IWDG reload register, 1 ms ticks)"
#endif

/* Polls of TXE (or TC) before a byte counts as stuck: each poll takes at least one cycle, so
 * this is at least 16 byte times at TL_BAUD. */
#define TX_SPIN_LIMIT ((TL_CPU_HZ / TL_BAUD) * 10u * 16u)

#if TL_STM32_USART == 1
#define UART_BASE 0x40011000u
#define UART_IRQ 37u
#define UART_TX_PIN 9u
#define UART_RX_PIN 10u
#define UART_IRQHandler USART1_IRQHandler
#define UART_CLOCK_ON() (RCC_APB2ENR |= RCC_APB2ENR_USART1EN, (void)RCC_APB2ENR)
#elif TL_STM32_USART == 2
#define UART_BASE 0x40004400u
#define UART_IRQ 38u
#define UART_TX_PIN 2u
#define UART_RX_PIN 3u
#define UART_IRQHandler USART2_IRQHandler
#define UART_CLOCK_ON() (RCC_APB1ENR |= RCC_APB1ENR_USART2EN, (void)RCC_APB1ENR)
#else
#error "TL_STM32_USART must be 1 or 2"
#endif

#if UART_IRQ >= TL_STM32F4_IRQS
#error "the UART's interrupt is past startup.c's vector table: raise TL_STM32F4_IRQS (stm32f4_regs.h)"
#endif

#define GPIO_AF_USART 7u

void SysTick_Handler(void);
void UART_IRQHandler(void);
void tl_stm32f4_fault(const uint32_t *frame, uint32_t exception) __attribute__((noreturn));

static tl_rx_ring_t rx;
static volatile uint32_t ticks_ms;
static int has_cyccnt;
static int reset_by_watchdog;
static void (*fault_report)(uint32_t pc, uint32_t exception);

static void gpio_set_af(uint32_t pin, uint32_t af)
{
    GPIOA_MODER = (GPIOA_MODER & ~(3u << (2u * pin))) | (2u << (2u * pin));
    GPIOA_AFR(pin >> 3) = (GPIOA_AFR(pin >> 3) & ~(0xFu << (4u * (pin & 7u)))) | (af << (4u * (pin & 7u)));
}

static void watchdog_start(void)
{
#if TL_WATCHDOG_MS > 0
    uint32_t spins = 0;
    IWDG_KR = IWDG_KEY_START;
    IWDG_KR = IWDG_KEY_UNLOCK;
    IWDG_PR = IWDG_PR_DIV32;
    IWDG_RLR = TL_WATCHDOG_MS;
    while (IWDG_SR != 0u && ++spins < 1000000u) { /* PR and RLR updates reach the LSI domain */
    }
    IWDG_KR = IWDG_KEY_RELOAD;
#endif
}

static int cycle_counter_runs(void)
{
    DEMCR |= DEMCR_TRCENA;
    DWT_CYCCNT = 0;
    DWT_CTRL |= DWT_CTRL_CYCCNTENA;
    uint32_t start = DWT_CYCCNT;
    for (volatile int i = 0; i < 16; i++) {}
    return DWT_CYCCNT != start;
}

void tl_hal_init(void)
{
    RCC_AHB1ENR |= RCC_AHB1ENR_GPIOAEN;
    (void)RCC_AHB1ENR; /* RM0090 errata: let the clock settle before touching GPIOA */
    UART_CLOCK_ON();

    gpio_set_af(UART_TX_PIN, GPIO_AF_USART);
    gpio_set_af(UART_RX_PIN, GPIO_AF_USART);
    GPIOA_PUPDR = (GPIOA_PUPDR & ~(3u << (2u * UART_RX_PIN))) | (1u << (2u * UART_RX_PIN)); /* RX pull-up */

    USART_BRR(UART_BASE) = (TL_PCLK_HZ + TL_BAUD / 2u) / TL_BAUD; /* oversampling 16 */
    USART_CR1(UART_BASE) = USART_CR1_UE | USART_CR1_TE | USART_CR1_RE | USART_CR1_RXNEIE;
    NVIC_ISER(UART_IRQ >> 5) = 1u << (UART_IRQ & 31u);

    SYST_RVR = TL_CPU_HZ / 1000u - 1u;
    SYST_CVR = 0;
    SYST_CSR = SYST_CSR_ENABLE_TICKINT_CPUCLK;

    has_cyccnt = cycle_counter_runs();
    reset_by_watchdog = (RCC_CSR & RCC_CSR_IWDGRSTF) != 0u;
    RCC_CSR |= RCC_CSR_RMVF;
    watchdog_start();
    __asm volatile("cpsie i" ::: "memory");
}

void UART_IRQHandler(void)
{
    uint32_t sr = USART_SR(UART_BASE);
    if (!(sr & (USART_SR_RXNE | USART_SR_ORE))) return;
    uint8_t byte = (uint8_t)USART_DR(UART_BASE); /* reading SR then DR clears RXNE and ORE */
    if (sr & USART_SR_ORE) rx.lost++;            /* the byte before this one was overwritten in the UART */
    tl_rx_ring_push(&rx, byte);
}

void SysTick_Handler(void) { ticks_ms++; }

int tl_hal_getc(void) { return tl_rx_ring_pop(&rx); }

/* WFI with PRIMASK set: an interrupt that became pending after the check still ends the WFI, and
 * runs once interrupts are enabled again. The SysTick wakes the core every millisecond. */
void tl_hal_idle(void)
{
    __asm volatile("cpsid i" ::: "memory");
    if (tl_rx_ring_empty(&rx)) __asm volatile("dsb\n\twfi" ::: "memory");
    __asm volatile("cpsie i" ::: "memory");
}

uint16_t tl_hal_rx_capacity(void) { return tl_rx_ring_capacity(); }

/* Wait (boundedly) for a USART_SR flag; 0 once it is set, -1 if it never came. */
static int wait_flag(uint32_t flag)
{
    uint32_t spins = 0;
    while (!(USART_SR(UART_BASE) & flag)) {
        if (++spins >= TX_SPIN_LIMIT) return -1;
    }
    return 0;
}

int tl_hal_write(const uint8_t *buf, size_t len)
{
    while (len--) {
        if (wait_flag(USART_SR_TXE) != 0) return -1;
        USART_DR(UART_BASE) = *buf++;
    }
    return 0;
}

void tl_hal_watchdog_refresh(void)
{
#if TL_WATCHDOG_MS > 0
    IWDG_KR = IWDG_KEY_RELOAD;
#endif
}

int tl_hal_reset_was_watchdog(void) { return reset_by_watchdog; }

void tl_hal_on_fault(void (*report)(uint32_t pc, uint32_t exception)) { fault_report = report; }

/* `used`: only startup.c's assembly calls it, which link-time optimisation does not see. */
__attribute__((used)) void tl_stm32f4_fault(const uint32_t *frame, uint32_t exception)
{
    exception &= 0x1FFu; /* IPSR: 3 HardFault, 4 MemManage, 5 BusFault, 6 UsageFault, 16+ IRQs */
    if (fault_report != 0) fault_report(frame[6], exception); /* the stacked pc */
    tl_hal_exit(128 + (int)exception);
}

uint32_t tl_hal_millis(void) { return ticks_ms; }

uint32_t tl_hal_cycles(void) { return has_cyccnt ? DWT_CYCCNT : 0u; }

int tl_hal_has_cycle_counter(void) { return has_cyccnt; }

uint32_t tl_hal_rx_overflows(void) { return rx.lost; }

const char *tl_hal_board_name(void)
{
#ifdef TL_QEMU
    return "qemu-stm32f405";
#else
    return "stm32f405";
#endif
}

void tl_hal_exit(int code)
{
#ifdef TL_SEMIHOSTING
    /* SYS_EXIT_EXTENDED (0x20) with {ADP_Stopped_ApplicationExit, code}: QEMU exits with `code`. */
    uint32_t block[2] = {0x20026u, (uint32_t)code};
    register uint32_t r0 __asm("r0") = 0x20u;
    register uint32_t *r1 __asm("r1") = block;
    __asm volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
#else
    (void)code;
    (void)wait_flag(USART_SR_TC); /* let the last frame leave, but never hang here */
    SCB_AIRCR = SCB_AIRCR_SYSRESETREQ;
    __asm volatile("dsb" ::: "memory");
#endif
    for (;;) {}
}
