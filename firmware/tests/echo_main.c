/*
 * Board test app, tl_hal.h only: prints READY, echoes every byte it receives, and on 'Q'
 * prints "BYE board=<name> ms=<millis> ovf=<rx overflows> cyc=<has cycle counter>"
 * and exits with 0.
 */
#include "tl_hal.h"

static void write_str(const char *s)
{
    size_t n = 0;
    while (s[n]) n++;
    (void)tl_hal_write((const uint8_t *)s, n);
}

static void write_u32(uint32_t v)
{
    uint8_t digits[10];
    size_t i = sizeof digits;
    do {
        digits[--i] = (uint8_t)('0' + v % 10u);
        v /= 10u;
    } while (v);
    (void)tl_hal_write(digits + i, sizeof digits - i);
}

int main(void)
{
    tl_hal_init();
    write_str("READY\n");
    for (;;) {
        int c = tl_hal_getc();
        tl_hal_watchdog_refresh();
        if (c < 0) continue;
        if (c == 'Q') break;
        uint8_t byte = (uint8_t)c;
        (void)tl_hal_write(&byte, 1);
    }
    write_str("BYE board=");
    write_str(tl_hal_board_name());
    write_str(" ms=");
    write_u32(tl_hal_millis());
    write_str(" ovf=");
    write_u32(tl_hal_rx_overflows());
    write_str(" cyc=");
    write_u32((uint32_t)tl_hal_has_cycle_counter());
    write_str("\n");
    tl_hal_exit(0);
}
