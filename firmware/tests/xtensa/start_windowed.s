/*
 * Startup of the Xtensa kernel-run harness, windowed ABI (clang/llc build), for QEMU
 * `-M sim -cpu dc233c`: reset vector, window overflow/underflow handlers, fault exits and the
 * semihosting call. Assembled with llvm-mc-22 (GNU as for lx106 does not know the windowed
 * instructions). dc233c: VECBASE = 0x2000 at reset, reset vector 0xfe000000 (dc233c.ld).
 *
 * Exit status (semihosting SYS_exit): the return value of main; 128 + EXCCAUSE after a user or
 * kernel exception; 126 after a double exception.
 */

/* ---- exception vectors at VECBASE (0x2000) --------------------------------------------- */
    .section .vectors, "ax"
    .global _vectors
_vectors:

/* The window handlers of the Xtensa ISA reference: spill/reload the a0-a3 of the frame below
 * to the 16 bytes under its callee stack pointer, and the extra registers of a call8/call12
 * frame to the area under its caller stack pointer. */
    .org 0x000
_WindowOverflow4:
    s32e a0, a5, -16
    s32e a1, a5, -12
    s32e a2, a5, -8
    s32e a3, a5, -4
    rfwo

    .org 0x040
_WindowUnderflow4:
    l32e a0, a5, -16
    l32e a1, a5, -12
    l32e a2, a5, -8
    l32e a3, a5, -4
    rfwu

    .org 0x080
_WindowOverflow8:
    s32e a0, a9, -16
    l32e a0, a1, -12
    s32e a1, a9, -12
    s32e a2, a9, -8
    s32e a3, a9, -4
    s32e a4, a0, -32
    s32e a5, a0, -28
    s32e a6, a0, -24
    s32e a7, a0, -20
    rfwo

    .org 0x0c0
_WindowUnderflow8:
    l32e a1, a9, -12
    l32e a0, a9, -16
    l32e a7, a1, -12
    l32e a2, a9, -8
    l32e a4, a7, -32
    l32e a3, a9, -4
    l32e a5, a7, -28
    l32e a6, a7, -24
    l32e a7, a7, -20
    rfwu

    .org 0x100
_WindowOverflow12:
    s32e a0, a13, -16
    l32e a0, a1, -12
    s32e a1, a13, -12
    s32e a2, a13, -8
    s32e a3, a13, -4
    s32e a4, a0, -48
    s32e a5, a0, -44
    s32e a6, a0, -40
    s32e a7, a0, -36
    s32e a8, a0, -32
    s32e a9, a0, -28
    s32e a10, a0, -24
    s32e a11, a0, -20
    rfwo

    .org 0x140
_WindowUnderflow12:
    l32e a1, a13, -12
    l32e a0, a13, -16
    l32e a11, a1, -12
    l32e a2, a13, -8
    l32e a4, a11, -48
    l32e a8, a11, -32
    l32e a3, a13, -4
    l32e a5, a11, -44
    l32e a6, a11, -40
    l32e a7, a11, -36
    l32e a9, a11, -28
    l32e a10, a11, -24
    l32e a11, a11, -20
    rfwu

/* Any other exception ends the run: 128 + EXCCAUSE (interrupts stay disabled, INTENABLE = 0). */
    .org 0x300
_KernelException:
    j _fault

    .org 0x340
_UserException:
    j _fault

    .org 0x3c0
_DoubleException:
    movi a3, 126
    j _exit_a3

    .org 0x3d0
_fault:
    rsr a3, exccause
    extui a3, a3, 0, 6
    addi a3, a3, 127
    addi a3, a3, 1
_exit_a3:
    movi a2, 1              # SYS_exit, status in a3
    .byte 0x00, 0x51, 0x00  # simcall (llvm-mc has no mnemonic for it)
1:  j 1b

/* ---- reset vector (0xfe000000, the start of dc233c system ROM) ----------------------- */
    .section .reset, "ax"
    .global _reset
_reset:
    j 1f
    .align 4
.Lstart_addr:
    .long _start
1:  l32r a0, .Lstart_addr   # L32R reads a literal below the instruction
    jx a0

/* ---- entry: one window, WOE on, zero .bss, call main with call4 ------------------------ */
    .section .text.xt_start, "ax"
    .align 4
.Lstack_top:
    .long __stack_top
.Lbss_start:
    .long __bss_start
.Lbss_end:
    .long __bss_end
.Lmain:
    .long main
.Lps:
    .long 0x00040020        # PS: WOE (window overflow exceptions on), UM, INTLEVEL 0, EXCM 0

    .align 4
    .global _start
_start:
    movi a0, 0
    wsr a0, windowbase
    rsync
    movi a0, 1
    wsr a0, windowstart     # only the current window holds live registers
    rsync
    l32r a1, .Lstack_top
    l32r a2, .Lbss_start
    l32r a3, .Lbss_end
    movi a4, 0
2:  bgeu a2, a3, 3f
    s32i a4, a2, 0
    addi a2, a2, 4
    j 2b
3:  l32r a0, .Lps
    wsr a0, ps
    rsync
    movi a0, 0              # end of the call chain
    l32r a4, .Lmain
    callx4 a4               # call4: spilling this frame (overflow4) reads no caller stack pointer
    mov a3, a6              # main's a2 (the return value) is a6 of this window
    movi a2, 1
    .byte 0x00, 0x51, 0x00  # simcall SYS_exit
4:  j 4b

/* int xt_simcall(int nr, int a, int b, int c): Xtensa ISS semihosting (QEMU -semihosting):
 * a2 = call number, a3..a5 = arguments, result in a2 (errno in a3). */
    .section .text.xt_simcall, "ax"
    .align 4
    .global xt_simcall
    .type xt_simcall, @function
xt_simcall:
    entry a1, 32
    .byte 0x00, 0x51, 0x00
    retw
    .size xt_simcall, . - xt_simcall
