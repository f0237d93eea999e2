/*
 * tl_rx_ring.h - the receive ring buffer of every bare-metal port.
 *
 * One producer (the UART receive interrupt: tl_rx_ring_push) and one consumer (tl_hal_getc in
 * thread mode: tl_rx_ring_pop). The indices run freely and are masked on access, so a full ring
 * (head - tail == TL_UART_RX_BUF) and an empty one (head == tail) are told apart without a
 * spare slot. Each index has one writer, so no lock is needed on a single core.
 *
 * TL_UART_RX_BUF: the ring's size in bytes, a power of two, default 256 (`tinylstm build` sizes
 * it so one INPUT frame of the model fits); the port announces it as HELLO.rx_capacity.
 */
#ifndef TL_RX_RING_H
#define TL_RX_RING_H

#include <stdint.h>

#ifndef TL_UART_RX_BUF
#define TL_UART_RX_BUF 256u
#endif
#if (TL_UART_RX_BUF & (TL_UART_RX_BUF - 1u)) != 0 || TL_UART_RX_BUF < 2 || TL_UART_RX_BUF > 32768
#error "TL_UART_RX_BUF must be a power of two, at most 32768"
#endif

typedef struct {
    volatile uint8_t buf[TL_UART_RX_BUF];
    volatile uint32_t head; /* written by the interrupt only */
    volatile uint32_t tail; /* written by tl_rx_ring_pop only */
    volatile uint32_t lost; /* bytes dropped: ring full, or counted by the port (UART overrun) */
} tl_rx_ring_t;

/* Interrupt side: store a received byte, or count it lost when the ring is full. */
static inline void tl_rx_ring_push(tl_rx_ring_t *r, uint8_t byte)
{
    uint32_t head = r->head;
    if (head - r->tail == TL_UART_RX_BUF) {
        r->lost++;
        return;
    }
    r->buf[head & (TL_UART_RX_BUF - 1u)] = byte;
    r->head = head + 1u;
}

/* Thread side: the oldest byte (0..255), or -1 when the ring is empty. */
static inline int tl_rx_ring_pop(tl_rx_ring_t *r)
{
    uint32_t tail = r->tail;
    if (tail == r->head) return -1;
    int byte = r->buf[tail & (TL_UART_RX_BUF - 1u)];
    r->tail = tail + 1u;
    return byte;
}

/* 1 when no byte is waiting (read with the port's interrupt masked, for tl_hal_idle). */
static inline int tl_rx_ring_empty(const tl_rx_ring_t *r) { return r->tail == r->head; }

/* The ring's size as HELLO.rx_capacity (a 16-bit field). */
static inline uint16_t tl_rx_ring_capacity(void)
{
    return (uint16_t)(TL_UART_RX_BUF > 0xFFFFu ? 0xFFFFu : TL_UART_RX_BUF);
}

#endif /* TL_RX_RING_H */
