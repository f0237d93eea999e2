/*
 * Startup of the Xtensa kernel-run harness, call0 ABI (xtensa-lx106-elf-gcc build), for QEMU
 * `-M sim -cpu lx106` (the ESP8266 core): reset vector, fault exits and the semihosting call.
 * lx106: VECBASE = 0x40000000 at reset, reset vector 0x50000000 (lx106.ld). No register windows.
 *
 * Exit status (semihosting SYS_exit): the return value of main; 128 + EXCCAUSE after a user or
 * kernel exception; 126 after a double exception, 125 after a debug exception or an NMI.
 */

/* ---- exception vectors at VECBASE (0x40000000) ----------------------------------------- */
    .section .vectors, "ax"
    .begin no-transform
    .global _vectors
_vectors:
    .org 0x10
_DebugException:
    movi a3, 125
    j _exit_a3

    .org 0x20
_NMIException:
    movi a3, 125
    j _exit_a3

    .org 0x30
_KernelException:
    j _fault

    .org 0x50
_UserException:
    j _fault

    .org 0x70
_DoubleException:
    movi a3, 126
    j _exit_a3

    .org 0x80
_fault:
    rsr a3, exccause
    extui a3, a3, 0, 6
    addi a3, a3, 127
    addi a3, a3, 1
_exit_a3:
    movi a2, 1              /* SYS_exit, status in a3 */
    simcall
1:  j 1b
    .end no-transform

/* ---- reset vector (0x50000000, the start of lx106's system ROM in QEMU) ------------------ */
    .section .reset, "ax"
    .begin no-transform
    .global _reset
_reset:
    j 1f
    .align 4
.Lstart_addr:
    .word _start
1:  l32r a0, .Lstart_addr   /* L32R reads a literal below the instruction */
    jx a0
    .end no-transform

/* ---- entry: stack, zero .bss, call main ----------------------------------------------- */
    .section .text.xt_start, "ax"
    .begin no-transform
    .align 4
.Lstack_top:
    .word __stack_top
.Lbss_start:
    .word __bss_start
.Lbss_end:
    .word __bss_end
.Lmain:
    .word main

    .align 4
    .global _start
_start:
    l32r a1, .Lstack_top
    l32r a2, .Lbss_start
    l32r a3, .Lbss_end
    movi a4, 0
2:  bgeu a2, a3, 3f
    s32i a4, a2, 0
    addi a2, a2, 4
    j 2b
3:  movi a0, 0x20           /* PS: UM, INTLEVEL 0, EXCM 0 */
    wsr a0, ps
    rsync
    movi a0, 0              /* end of the call chain */
    l32r a4, .Lmain
    callx0 a4
    mov a3, a2              /* the return value of main */
    movi a2, 1
    simcall                 /* SYS_exit */
4:  j 4b
    .end no-transform

/* int xt_simcall(int nr, int a, int b, int c): Xtensa ISS semihosting (QEMU -semihosting):
 * a2 = call number, a3..a5 = arguments, result in a2 (errno in a3). */
    .section .text.xt_simcall, "ax"
    .align 4
    .global xt_simcall
    .type xt_simcall, @function
xt_simcall:
    simcall
    ret
    .size xt_simcall, . - xt_simcall
