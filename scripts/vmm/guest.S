/* scripts/vmm/guest.S: the VMM lab's guest (scripts/vmm-test), a bare-metal
 * multiboot program of a few hundred bytes that QEMU boots with -kernel in
 * well under a second of software emulation.
 *
 * At boot it prints its banner ("pkfs-guest: boot") once, fills
 * PATTERN_BYTES of RAM at PATTERN_BASE with a pattern (each 32-bit word
 * holds its address xor PATTERN_XOR) and sets a counter in RAM at
 * COUNTER_BASE ("PKCT", then the count). Then, about ten times a second, it
 * adds one to the counter, checks one word of every 64 KiB of the pattern
 * and prints "count N ok" (or "count N BAD") on the first serial port.
 *
 * All its state is in guest RAM: when QEMU's RAM is a pkfs file that
 * survives the VMM, a restored guest goes on counting from where it
 * stopped, and never prints its banner again. The test reads the counter
 * from the file too (offset COUNTER_BASE).
 *
 * Build: as --32 -o guest.o guest.S && ld -m elf_i386 -Ttext=0x100000 -o guest guest.o
 */
#define COM1 0x3f8
#define COUNTER_BASE 0x200000
#define COUNTER_MAGIC 0x54434b50 /* "PKCT" */
#define PATTERN_BASE 0x400000
#define PATTERN_BYTES 0x2000000 /* 32 MiB */
#define PATTERN_XOR 0x5a5aa5a5
#define DELAY_TICKS 0x10000000 /* TSC ticks between counts: ~0.1 s */

        .section .text
        .code32
        .globl _start
        .align 4
multiboot_header:
        .long 0x1badb002              /* magic */
        .long 0                       /* flags */
        .long -0x1badb002             /* checksum */

_start:
        cli
        mov $0x180000, %esp
        mov $banner, %esi
        call puts

        /* The pattern. */
        mov $PATTERN_BASE, %edi
1:      mov %edi, %eax
        xor $PATTERN_XOR, %eax
        mov %eax, (%edi)
        add $4, %edi
        cmp $(PATTERN_BASE + PATTERN_BYTES), %edi
        jb 1b

        movl $COUNTER_MAGIC, COUNTER_BASE
        movl $0, COUNTER_BASE + 4

tick:
        incl COUNTER_BASE + 4
        mov $count_text, %esi
        call puts
        mov COUNTER_BASE + 4, %eax
        call putdec

        /* One word of every 64 KiB of the pattern. */
        mov $PATTERN_BASE, %edi
        mov $ok_text, %esi
2:      mov %edi, %eax
        xor $PATTERN_XOR, %eax
        cmp %eax, (%edi)
        je 3f
        mov $bad_text, %esi
3:      add $0x10000, %edi
        cmp $(PATTERN_BASE + PATTERN_BYTES), %edi
        jb 2b
        call puts

        /* Wait DELAY_TICKS of the TSC (which QEMU keeps across migration). */
        rdtsc
        mov %eax, %ebx
4:      pause
        rdtsc
        sub %ebx, %eax
        cmp $DELAY_TICKS, %eax
        jb 4b
        jmp tick

/* putc: %al to COM1 once its transmitter is empty. */
putc:
        push %edx
        push %eax
        mov $(COM1 + 5), %dx
5:      in %dx, %al
        test $0x20, %al
        jz 5b
        pop %eax
        mov $COM1, %dx
        out %al, %dx
        pop %edx
        ret

/* puts: the NUL-terminated string at %esi. */
puts:
        push %eax
        push %esi
6:      lodsb
        test %al, %al
        jz 7f
        call putc
        jmp 6b
7:      pop %esi
        pop %eax
        ret

/* putdec: %eax in decimal. */
putdec:
        push %ebx
        push %ecx
        push %edx
        mov $10, %ebx
        xor %ecx, %ecx
8:      xor %edx, %edx
        div %ebx
        push %edx
        inc %ecx
        test %eax, %eax
        jnz 8b
9:      pop %eax
        add $'0', %al
        call putc
        loop 9b
        pop %edx
        pop %ecx
        pop %ebx
        ret

banner:     .asciz "pkfs-guest: boot\n"
count_text: .asciz "count "
ok_text:    .asciz " ok\n"
bad_text:   .asciz " BAD\n"
