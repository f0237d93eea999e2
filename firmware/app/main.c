/* Bare-metal entry point of the TinyLSTM firmware: the whole app lives in tl_app.c. */
#include "tl_app.h"
#include "tl_hal.h"

int main(void)
{
    tl_hal_init();
    tl_app_init();
    for (;;) tl_app_poll();
}
