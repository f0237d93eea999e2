/*
 * hal_arduino.cpp - tl_hal.h on the Arduino core (ESP32 DevKit: arduino-esp32; Nucleo-F446RE:
 * STM32duino), plus setup()/loop() running the TinyLSTM app. Copied into the PlatformIO project
 * written by `tinylstm build --board esp32dev|nucleo_f446re`.
 *
 * Serial is the USB-serial bridge (ESP32: UART0 on the CP210x/CH340; Nucleo: USART2 on the
 * ST-LINK virtual COM port) at TL_BAUD 8N1. Cycle counter: CCOUNT on the ESP32, DWT CYCCNT on
 * the STM32. The Arduino cores do not report received bytes they lost, so
 * tl_hal_rx_overflows() counts only what this file can see (nothing); the host still counts
 * every corrupt or missing frame.
 */
#include <Arduino.h>

#include "tl_app.h"
#include "tl_hal.h"

#ifndef TL_BAUD
#define TL_BAUD 115200
#endif

#if defined(ARDUINO_ARCH_ESP32)
#define TL_BOARD_NAME "esp32dev"
#elif defined(ARDUINO_ARCH_STM32)
#define TL_BOARD_NAME "nucleo_f446re"
#else
#define TL_BOARD_NAME "arduino"
#endif

static uint32_t start_ms;
static int cycles_ok;

extern "C" {

void tl_hal_init(void)
{
#if defined(ARDUINO_ARCH_ESP32)
    Serial.setRxBufferSize(1024);
#endif
    Serial.begin(TL_BAUD);
    while (!Serial) {
    }
#if defined(ARDUINO_ARCH_STM32)
    CoreDebug->DEMCR |= CoreDebug_DEMCR_TRCENA_Msk;
    DWT->CYCCNT = 0;
    DWT->CTRL |= DWT_CTRL_CYCCNTENA_Msk;
#endif
    start_ms = millis();
    uint32_t c0 = tl_hal_cycles();
    delayMicroseconds(10);
    cycles_ok = tl_hal_cycles() != c0;
}

int tl_hal_getc(void)
{
    return Serial.available() > 0 ? Serial.read() : -1;
}

void tl_hal_write(const uint8_t *buf, size_t len)
{
    Serial.write(buf, len);
}

uint32_t tl_hal_millis(void)
{
    return millis() - start_ms;
}

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

int tl_hal_has_cycle_counter(void)
{
    return cycles_ok;
}

uint32_t tl_hal_rx_overflows(void)
{
    return 0;
}

const char *tl_hal_board_name(void)
{
    return TL_BOARD_NAME;
}

void tl_hal_exit(int code)
{
    (void)code;
    Serial.flush();
#if defined(ARDUINO_ARCH_ESP32)
    ESP.restart();
#else
    NVIC_SystemReset();
#endif
    for (;;) {
    }
}

} /* extern "C" */

void setup()
{
    tl_hal_init();
    tl_app_init();
}

void loop()
{
    tl_app_poll();
}
