/*
 * tl_hal_espidf.c - tl_hal.h on ESP-IDF 5.x, any ESP32 chip (ESP32, -S2, -S3, -C3, -C6, -H2).
 * Copied into the ESP-IDF component `tinylstm build --board esp-idf` writes.
 *
 * UART: TL_UART (default UART_NUM_0, the USB-serial bridge of the DevKits) at TL_BAUD 8N1 through
 * the IDF UART driver; its RX ring buffer is the receive capacity the app announces
 * (HELLO.rx_capacity = TL_RX_CAPACITY, set for the model by `tinylstm build`, at least 1024: the
 * driver needs more than the 128-byte hardware FIFO). TX: uart_tx_chars into the hardware FIFO, with
 * a bound. Received bytes the driver drops (FIFO overflow, full ring buffer) are counted from its
 * event queue, as events (the driver does not say how many bytes each event lost).
 * Time: esp_timer (microseconds since boot); cycles: esp_cpu_get_cycle_count() (CCOUNT on Xtensa,
 * mcycle on RISC-V). Watchdog: the calling task subscribes to the task watchdog
 * (CONFIG_ESP_TASK_WDT_TIMEOUT_S), fed once per poll and step. Faults: the IDF panic handler prints
 * its own report and reboots; the host then sees a new HELLO (tl_hal_on_fault's reporter is kept
 * but the IDF gives no hook before its panic output). Board name: "esp-idf-<target>".
 */
#include "tl_app.h" /* tl_config.h: TL_RX_CAPACITY, TL_BAUD */
#include "tl_hal.h"

#include "driver/uart.h"
#include "esp_cpu.h"
#include "esp_system.h"
#include "esp_task_wdt.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "freertos/queue.h"
#include "sdkconfig.h"

#ifndef TL_UART
#define TL_UART UART_NUM_0
#endif
#ifndef TL_BAUD
#define TL_BAUD 115200
#endif
#ifndef TL_RX_CAPACITY
#define TL_RX_CAPACITY 1024
#endif
#ifndef TL_TX_TIMEOUT_US
#define TL_TX_TIMEOUT_US 20000
#endif

#if TL_RX_CAPACITY <= 128
#error "TL_RX_CAPACITY must exceed the UART's 128-byte hardware FIFO (uart_driver_install)"
#endif

static QueueHandle_t uart_events;
static uint32_t rx_lost;
static int cycles_ok;
static int watchdog_reset;
static int watchdog_on;
static int64_t start_us;
static void (*fault_report)(uint32_t pc, uint32_t exception);

void tl_hal_init(void)
{
    const uart_config_t cfg = {
        .baud_rate = TL_BAUD,
        .data_bits = UART_DATA_8_BITS,
        .parity = UART_PARITY_DISABLE,
        .stop_bits = UART_STOP_BITS_1,
        .flow_ctrl = UART_HW_FLOWCTRL_DISABLE,
        .source_clk = UART_SCLK_DEFAULT,
    };
    ESP_ERROR_CHECK(uart_driver_install(TL_UART, TL_RX_CAPACITY, 0, 8, &uart_events, 0));
    ESP_ERROR_CHECK(uart_param_config(TL_UART, &cfg));

    esp_reset_reason_t why = esp_reset_reason();
    watchdog_reset = why == ESP_RST_TASK_WDT || why == ESP_RST_INT_WDT || why == ESP_RST_WDT;
    watchdog_on = esp_task_wdt_add(NULL) == ESP_OK; /* ESP_ERR_INVALID_STATE: the TWDT is not running */

    start_us = esp_timer_get_time();
    uint32_t c0 = esp_cpu_get_cycle_count();
    esp_rom_delay_us(10);
    cycles_ok = esp_cpu_get_cycle_count() != c0;
}

int tl_hal_getc(void)
{
    uart_event_t ev;
    while (xQueueReceive(uart_events, &ev, 0) == pdTRUE) {
        if (ev.type == UART_FIFO_OVF || ev.type == UART_BUFFER_FULL) {
            rx_lost++;
            uart_flush_input(TL_UART); /* what the IDF's UART example does after an overflow */
        }
    }
    uint8_t byte;
    return uart_read_bytes(TL_UART, &byte, 1, 0) == 1 ? byte : -1;
}

uint16_t tl_hal_rx_capacity(void) { return (uint16_t)TL_RX_CAPACITY; }

int tl_hal_write(const uint8_t *buf, size_t len)
{
    int64_t last = esp_timer_get_time();
    while (len > 0) {
        int n = uart_tx_chars(TL_UART, (const char *)buf, (uint32_t)len);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
            last = esp_timer_get_time();
        } else if (esp_timer_get_time() - last > TL_TX_TIMEOUT_US) {
            return -1;
        }
    }
    return 0;
}

uint32_t tl_hal_millis(void) { return (uint32_t)((esp_timer_get_time() - start_us) / 1000); }

uint32_t tl_hal_cycles(void) { return esp_cpu_get_cycle_count(); }

int tl_hal_has_cycle_counter(void) { return cycles_ok; }

uint32_t tl_hal_rx_overflows(void) { return rx_lost; }

void tl_hal_watchdog_refresh(void)
{
    if (watchdog_on) (void)esp_task_wdt_reset();
}

int tl_hal_reset_was_watchdog(void) { return watchdog_reset; }

void tl_hal_on_fault(void (*report)(uint32_t pc, uint32_t exception)) { fault_report = report; }

const char *tl_hal_board_name(void) { return "esp-idf-" CONFIG_IDF_TARGET; }

void tl_hal_exit(int code)
{
    (void)code;
    (void)uart_wait_tx_done(TL_UART, pdMS_TO_TICKS(100));
    esp_restart();
}
