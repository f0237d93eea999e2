/*
 * tl_sensor.h - hook for feeding the model from a sensor on the board (input source 2).
 *
 * When the app's input source is TL_PROTO_SOURCE_SENSOR (SET_SOURCE 2 from the host, or a build with
 * -DTL_APP_BOOT_SOURCE=2), the main loop calls tl_sensor_read() on every pass. Return 1 after
 * writing one raw sample of TL_MODEL_INPUT_SIZE floats, in the units the model was trained on
 * (the app normalises and quantizes it to the model's input type with tl_quantize_input, or
 * tl_quantize_input_s16 for an int16-h model, runs one step and sends a PRED);
 * return 0 when no new sample is ready yet. Never block: the loop also serves the serial port.
 * Pace the samples yourself (e.g. compare tl_hal_millis() with your sample period), at the
 * rate the training data was recorded at.
 *
 * The app carries a weak default that always returns 0 (no sensor). Define your own
 * tl_sensor_read in any source file of the build and the linker takes it instead:
 *
 *     #include "tl_sensor.h"
 *     int tl_sensor_read(float *x) {
 *         static uint32_t next;
 *         if ((int32_t)(tl_hal_millis() - next) < 0) return 0;
 *         next += 20;                      // 50 Hz
 *         imu_read_accel(&x[0]);           // x[0..2]
 *         imu_read_gyro(&x[3]);            // x[3..5]
 *         return 1;
 *     }
 */
#ifndef TL_SENSOR_H
#define TL_SENSOR_H

#ifdef __cplusplus
extern "C" {
#endif

/* One raw sample into x[0 .. TL_MODEL_INPUT_SIZE-1]; 1 = sample written, 0 = none ready. */
int tl_sensor_read(float *x);

#ifdef __cplusplus
}
#endif

#endif /* TL_SENSOR_H */
