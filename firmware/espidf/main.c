/*
 * main.c - the example application of the TinyLSTM ESP-IDF component: the streaming firmware
 * (tl_app.h) in the main task. tl_app_poll() never blocks here (this HAL has no tl_hal_idle), so
 * this task never yields to the idle task: sdkconfig.defaults turns the task watchdog's idle-task
 * checks off, and the HAL subscribes this task to the watchdog instead, so a hung step still
 * reboots the chip.
 */
#include "tl_app.h"
#include "tl_hal.h"

void app_main(void)
{
    tl_hal_init();
    tl_app_init();
    for (;;) tl_app_poll();
}
