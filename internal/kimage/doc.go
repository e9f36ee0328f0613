// Package kimage reads what a kernel image says about the kernel inside it:
// its release, the memory it needs while it decompresses, and the Live
// Update formats it speaks; and the formats of the running kernel.
//
// luod's update package imports it to refuse a live update into a kernel
// that cannot take over what the running kernel preserves, and the VM test
// harness imports it to name the kernels it boots. Nothing in it keeps
// state; every function and method is safe for concurrent use.
//
// # The formats
//
// A live update hands state from one kernel to the next in three layers,
// each tagged with a compatible string that the next kernel checks:
//
//   - KHO ("kho-v4" in Linux 7.2 and 7.3, kexec_handover.h): on a mismatch
//     the next kernel disables KHO revival and boots without any of the
//     preserved state.
//   - LUO ("luo-v5", include/linux/kho/abi/luo.h): on a mismatch the next
//     kernel panics early in its boot.
//   - the memfd file handler ("memfd-v2", mm/memfd_luo.c): on a mismatch
//     every open of /dev/liveupdate in the next kernel fails with EIO for
//     the whole boot, so nothing can be retrieved.
//
// The strings are compiled into the kernel. [Image.Formats] finds them in
// the decompressed kernel of an image and [Running] in the memory of the
// running kernel; [Formats.Accepts] compares two sets. A kernel built
// without CONFIG_LIVEUPDATE, CONFIG_KEXEC_HANDOVER or
// CONFIG_LIVEUPDATE_MEMFD lacks the corresponding string, which is an
// error ([ErrMissing]), as are two versions of one kind ([ErrAmbiguous]).
//
// # Images
//
// [Open] reads x86 bzImages (boot protocol 2.10 or later,
// Documentation/arch/x86/boot.rst). Their payload, the kernel proper, may
// be compressed with gzip, bzip2, lzma, xz (with or without the x86 BCJ
// filter that kernel builds use), lz4 (the legacy frame format of kernel
// builds), zstd, or not at all; lzo payloads are recognized but not read
// ([ErrUnsupported]). Decompression streams and stops with [ErrTooLarge]
// past [MaxDecompressed] bytes.
//
// # Privileges
//
// Reading an image needs only read access to its file. [Running] needs
// root (CAP_SYS_RAWIO to read /proc/kcore, and the symbol addresses of
// /proc/kallsyms) and a kernel built with CONFIG_PROC_KCORE; it works on
// x86_64 only.
package kimage
