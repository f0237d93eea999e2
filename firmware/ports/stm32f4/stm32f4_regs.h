/*
 * The few STM32F4 / Cortex-M4 registers this port touches (RM0090, PM0214).
 * Defined here so the port needs no vendor HAL or CMSIS headers.
 */
#ifndef TL_STM32F4_REGS_H
#define TL_STM32F4_REGS_H

#include <stdint.h>

#define TL_REG(addr) (*(volatile uint32_t *)(addr))

/* Reset and clock control */
#define RCC_BASE 0x40023800u
#define RCC_AHB1ENR TL_REG(RCC_BASE + 0x30u)
#define RCC_APB1ENR TL_REG(RCC_BASE + 0x40u)
#define RCC_APB2ENR TL_REG(RCC_BASE + 0x44u)
#define RCC_CSR TL_REG(RCC_BASE + 0x74u)
#define RCC_AHB1ENR_GPIOAEN (1u << 0)
#define RCC_APB1ENR_USART2EN (1u << 17)
#define RCC_APB2ENR_USART1EN (1u << 4)
#define RCC_CSR_RMVF (1u << 24)     /* write 1: clear the reset flags */
#define RCC_CSR_IWDGRSTF (1u << 29) /* the independent watchdog reset the chip */

/* Independent watchdog (clocked by the 32 kHz LSI, which it starts itself) */
#define IWDG_BASE 0x40003000u
#define IWDG_KR TL_REG(IWDG_BASE + 0x00u)
#define IWDG_PR TL_REG(IWDG_BASE + 0x04u)
#define IWDG_RLR TL_REG(IWDG_BASE + 0x08u)
#define IWDG_SR TL_REG(IWDG_BASE + 0x0Cu)
#define IWDG_KEY_START 0xCCCCu
#define IWDG_KEY_UNLOCK 0x5555u
#define IWDG_KEY_RELOAD 0xAAAAu
#define IWDG_PR_DIV32 3u /* 32 kHz / 32 = 1 tick per ms */

/* GPIO port A */
#define GPIOA_BASE 0x40020000u
#define GPIOA_MODER TL_REG(GPIOA_BASE + 0x00u)
#define GPIOA_PUPDR TL_REG(GPIOA_BASE + 0x0Cu)
#define GPIOA_AFR(n) TL_REG(GPIOA_BASE + 0x20u + 4u * (n)) /* n = 0: AFRL, 1: AFRH */

/* USART (same layout for USART1 at 0x40011000 and USART2 at 0x40004400) */
#define USART_SR(base) TL_REG((base) + 0x00u)
#define USART_DR(base) TL_REG((base) + 0x04u)
#define USART_BRR(base) TL_REG((base) + 0x08u)
#define USART_CR1(base) TL_REG((base) + 0x0Cu)
#define USART_SR_ORE (1u << 3)
#define USART_SR_RXNE (1u << 5)
#define USART_SR_TC (1u << 6)
#define USART_SR_TXE (1u << 7)
#define USART_CR1_RE (1u << 2)
#define USART_CR1_TE (1u << 3)
#define USART_CR1_RXNEIE (1u << 5)
#define USART_CR1_UE (1u << 13)

/* Cortex-M4 system control space */
#define SYST_CSR TL_REG(0xE000E010u)
#define SYST_RVR TL_REG(0xE000E014u)
#define SYST_CVR TL_REG(0xE000E018u)
#define SYST_CSR_ENABLE_TICKINT_CPUCLK 0x7u
#define NVIC_ISER(n) TL_REG(0xE000E100u + 4u * (n))
/* Interrupts in startup.c's vector table: IRQ 0..38, up to USART2, the last one this port enables. */
#define TL_STM32F4_IRQS 39u
#define SCB_AIRCR TL_REG(0xE000ED0Cu)
#define SCB_AIRCR_SYSRESETREQ 0x05FA0004u /* VECTKEY | SYSRESETREQ */
#define SCB_CPACR TL_REG(0xE000ED88u)
#define SCB_CPACR_CP10_CP11_FULL (0xFu << 20)
#define DEMCR TL_REG(0xE000EDFCu)
#define DEMCR_TRCENA (1u << 24)
#define DWT_CTRL TL_REG(0xE0001000u)
#define DWT_CTRL_CYCCNTENA (1u << 0)
#define DWT_CYCCNT TL_REG(0xE0001004u)

#endif /* TL_STM32F4_REGS_H */
