/*
 * hal_arduino.cpp - tl_hal.h on the Arduino core (arduino-esp32: ESP32, ESP32-C3; STM32duino:
 * Nucleo-F446RE). Copied into the PlatformIO project `tinylstm build` writes for an Arduino board
 * (with main_arduino.cpp: setup()/loop() running the app) and into the Arduino library
 * (`--board arduino-lib`, whose example sketch has setup()/loop()).
 *
 * Serial is the USB-serial bridge (ESP32: UART0 on the CP210x/CH340; ESP32-C3-DevKitM-1: UART0 on
 * its bridge; Nucleo: USART2 on the ST-LINK virtual COM port) at TL_BAUD 8N1. TL_BOARD_NAME (set
 * per PlatformIO environment) is the name HELLO reports. Receive capacity (HELLO.rx_capacity): the
 * core's RX buffer, 1024 bytes on the ESP32s (setRxBufferSize), SERIAL_RX_BUFFER_SIZE - 1 on
 * STM32duino (platformio.ini sets 256; the library refuses to compile where the core's default
 * buffer cannot take one of the model's INPUT frames). Cycle counter: CCOUNT on the ESP32, DWT CYCCNT on
 * the STM32. Watchdog: the Arduino loop watchdog on the ESP32 (enableLoopWDT), the IWDG
 * (IWatchdog library, TL_WATCHDOG_MS) on STM32duino. Faults: on STM32duino the HardFault
 * handler below reports ERROR FAULT and resets; on the ESP32 the ESP-IDF panic handler prints
 * its own report and reboots (the host then sees a new HELLO). The Arduino cores do not report
 * received bytes they lost, so tl_hal_rx_overflows() counts only what this file can see
 * (nothing); the host still counts every corrupt or missing frame.
 */
#include <Arduino.h>

#include "tl_app.h"
#include "tl_hal.h"

#if defined(ARDUINO_ARCH_ESP32)
#include <esp_system.h>
#elif defined(ARDUINO_ARCH_STM32)
#include <IWatchdog.h>
#endif

#ifndef TL_BAUD
#define TL_BAUD 115200
#endif
#ifndef TL_TX_TIMEOUT_MS
#define TL_TX_TIMEOUT_MS 20u
#endif
#ifndef TL_WATCHDOG_MS
#define TL_WATCHDOG_MS 2000u
#endif

#ifndef TL_BOARD_NAME
#define TL_BOARD_NAME "arduino"
#endif

#if defined(ARDUINO_ARCH_ESP32)
#ifndef TL_RX_CAPACITY
#define TL_RX_CAPACITY 1024u /* `tinylstm build` sets it for the model */
#endif
#else
#undef TL_RX_CAPACITY /* the core's buffer decides */
#define TL_RX_CAPACITY (SERIAL_RX_BUFFER_SIZE - 1u)
#if defined(TL_RX_LEAST) && (SERIAL_RX_BUFFER_SIZE - 1) < TL_RX_LEAST
/* the host could not send one INPUT frame of this model plus its control reserve (tl_config.h) */
// clang-format off
#error "TinyLSTM: the serial receive buffer is too small for this model: build with -DSERIAL_RX_BUFFER_SIZE=256 (STM32duino: a build_opt.h beside the sketch, or platformio.ini build_flags)"
// clang-format on
#endif
#endif

static uint32_t start_ms;
static int cycles_ok;
static int watchdog_reset;
static void (*fault_report)(uint32_t pc, uint32_t exception);

extern "C" {

void tl_hal_init(void)
{
#if defined(ARDUINO_ARCH_ESP32)
    Serial.setRxBufferSize(TL_RX_CAPACITY);
#endif
    Serial.begin(TL_BAUD);
    while (!Serial) {}
#if defined(ARDUINO_ARCH_ESP32)
    esp_reset_reason_t why = esp_reset_reason();
    watchdog_reset = why == ESP_RST_TASK_WDT || why == ESP_RST_INT_WDT || why == ESP_RST_WDT;
    enableLoopWDT();
#elif defined(ARDUINO_ARCH_STM32)
    CoreDebug->DEMCR |= CoreDebug_DEMCR_TRCENA_Msk;
    DWT->CYCCNT = 0;
    DWT->CTRL |= DWT_CTRL_CYCCNTENA_Msk;
    watchdog_reset = IWatchdog.isReset(true);
    IWatchdog.begin(TL_WATCHDOG_MS * 1000u);
#endif
    start_ms = millis();
    uint32_t c0 = tl_hal_cycles();
    delayMicroseconds(10);
    cycles_ok = tl_hal_cycles() != c0;
}

int tl_hal_getc(void) { return Serial.available() > 0 ? Serial.read() : -1; }

uint16_t tl_hal_rx_capacity(void) { return (uint16_t)TL_RX_CAPACITY; }

int tl_hal_write(const uint8_t *buf, size_t len)
{
    uint32_t last = millis();
    while (len > 0) {
        int room = Serial.availableForWrite();
        if (room > 0) {
            size_t n = len < (size_t)room ? len : (size_t)room;
            Serial.write(buf, n);
            buf += n;
            len -= n;
            last = millis();
        } else if (millis() - last > TL_TX_TIMEOUT_MS) {
            return -1;
        }
    }
    return 0;
}

uint32_t tl_hal_millis(void) { return millis() - start_ms; }

uint32_t tl_hal_cycles(void)
{
#if defined(ARDUINO_ARCH_ESP32)
    return ESP.getCycleCount();
#elif defined(ARDUINO_ARCH_STM32)
    return DWT->CYCCNT;
#else
    return 0;
#endif
}

int tl_hal_has_cycle_counter(void) { return cycles_ok; }

uint32_t tl_hal_rx_overflows(void) { return 0; }

void tl_hal_watchdog_refresh(void)
{
#if defined(ARDUINO_ARCH_ESP32)
    feedLoopWDT();
#elif defined(ARDUINO_ARCH_STM32)
    IWatchdog.reload();
#endif
}

int tl_hal_reset_was_watchdog(void) { return watchdog_reset; }

void tl_hal_on_fault(void (*report)(uint32_t pc, uint32_t exception)) { fault_report = report; }

const char *tl_hal_board_name(void) { return TL_BOARD_NAME; }

void tl_hal_exit(int code)
{
    (void)code;
    Serial.flush();
#if defined(ARDUINO_ARCH_ESP32)
    ESP.restart();
#else
    NVIC_SystemReset();
#endif
    for (;;) {}
}

#if defined(ARDUINO_ARCH_STM32)
void tl_arduino_fault(const uint32_t *frame, uint32_t exception)
{
    if (fault_report != 0) fault_report(frame[6], exception & 0x1FFu);
    NVIC_SystemReset();
}

/* Replaces the core's weak HardFault_Handler: the stacked frame (MSP or PSP) and IPSR. */
__attribute__((naked)) void HardFault_Handler(void)
{
    __asm volatile("tst lr, #4\n\t"
                   "ite eq\n\t"
                   "mrseq r0, msp\n\t"
                   "mrsne r0, psp\n\t"
                   "mrs r1, ipsr\n\t"
                   "b tl_arduino_fault\n\t");
}
#endif

} /* extern "C" */
