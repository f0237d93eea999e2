/*
 * main_arduino.cpp - setup()/loop() of the PlatformIO firmware: the TinyLSTM app on the Arduino HAL
 * (hal_arduino.cpp). The Arduino library has the same two functions in its example sketch instead.
 */
#include <Arduino.h>

#include "tl_app.h"
#include "tl_hal.h"

void setup()
{
    tl_hal_init();
    tl_app_init();
}

void loop() { tl_app_poll(); }
