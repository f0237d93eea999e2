/*
 * tl_hal.h - the board-independent hardware layer of the TinyLSTM firmware.
 *
 * Every board port (firmware/ports/<port>/, firmware/platformio/hal_arduino.cpp) implements
 * exactly these functions; the application and the tests include nothing else board-specific.
 * All functions are called from thread mode (main), except where a function says otherwise.
 * docs/porting.md walks through a new port.
 */
#ifndef TL_HAL_H
#define TL_HAL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bring the board up: clocks, the serial port (TL_BAUD, 8N1, RX interrupt into a ring
 * buffer), the 1 kHz millisecond tick, the cycle counter if the core has one, and the
 * watchdog where the port enables one. Call once, first thing in main(). */
void tl_hal_init(void);

/* Next received byte (0..255) from the RX ring buffer, or -1 if the buffer is empty.
 * Never blocks. */
int tl_hal_getc(void);

/* Bytes the RX buffer holds before it drops any: the receive capacity the app announces to
 * the host (HELLO.rx_capacity), which then never has more bytes in flight. */
uint16_t tl_hal_rx_capacity(void);

/* Transmit len bytes. Returns 0 once the last byte has been handed to the UART, or -1 if
 * the UART did not take a byte within its bound (a few byte times; the rest of buf is
 * dropped): a stuck transmitter never hangs the firmware. */
int tl_hal_write(const uint8_t *buf, size_t len);

/* Milliseconds since tl_hal_init(), monotonic, wraps after about 49.7 days. */
uint32_t tl_hal_millis(void);

/* Free-running CPU cycle counter (wraps at 2^32). Returns 0 when the board cannot
 * count cycles (QEMU does not model the Cortex-M DWT); see tl_hal_has_cycle_counter(). */
uint32_t tl_hal_cycles(void);

/* 1 if tl_hal_cycles() really advances on this board, 0 otherwise (checked at init). */
int tl_hal_has_cycle_counter(void);

/* Number of received bytes lost: the RX ring buffer was full, or the UART overran
 * (a byte arrived before the interrupt had read the previous one). */
uint32_t tl_hal_rx_overflows(void);

/* Sleep until the next interrupt (a received byte, or the port's tick) unless a received byte is
 * already waiting (checked with interrupts masked, so one that arrives meanwhile still wakes the
 * core). The app calls it when the host feeds the samples and a poll found no byte: nothing but a
 * received byte can make work then. Optional: the app's weak default returns at once (the core
 * keeps polling), so a port without a low-power wait need not define it. */
void tl_hal_idle(void);

/* Restart the watchdog's countdown. The app calls it at least once per model step and per
 * poll; a port without an enabled watchdog (QEMU models none) does nothing here. */
void tl_hal_watchdog_refresh(void);

/* 1 if the last reset was caused by the watchdog, 0 otherwise (read once at init). */
int tl_hal_reset_was_watchdog(void);

/* Register the function the CPU fault handler calls (with the faulting pc and the exception
 * number) before the port resets the board, or, in QEMU builds, ends the emulator with
 * status 128 + exception. It runs in the fault handler: it may only use tl_hal_write. */
void tl_hal_on_fault(void (*report)(uint32_t pc, uint32_t exception));

/* Short board identifier reported to the host, e.g. "stm32f405" or "qemu-stm32f405". */
const char *tl_hal_board_name(void);

/* Stop the firmware. Built with TL_SEMIHOSTING (QEMU), this ends the emulator with exit
 * status `code`; on a real board it waits for the UART to drain and resets the chip. */
void tl_hal_exit(int code) __attribute__((noreturn));

#ifdef __cplusplus
}
#endif

#endif /* TL_HAL_H */
