//go:build linux && amd64

package kimage

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
)

// The x86_64 kernel image mapping: __START_KERNEL_map plus
// KERNEL_IMAGE_SIZE (1 GiB with CONFIG_RANDOMIZE_BASE) in
// Documentation/arch/x86/x86_64/mm.rst. Modules follow.
const (
	kernelMapStart = 0xffffffff80000000
	kernelMapEnd   = 0xffffffffc0000000
)

// Running returns the Live Update formats of the running kernel, read from
// its own memory: the kernel image's read-only data and data, as mapped in
// /proc/kcore and located by the symbols __start_rodata, __end_rodata,
// _sdata and _edata of /proc/kallsyms (or the whole image mapping when
// kallsyms lacks them). It needs root (CAP_SYS_RAWIO, and symbol addresses
// that kptr_restrict shows to root) and a kernel built with
// CONFIG_PROC_KCORE, not locked down. Like [Image.Formats], it fails with
// an error wrapping [ErrMissing] or [ErrAmbiguous] when a format is
// absent or doubled.
func Running() (Formats, error) {
	f, err := runningFormats("/proc/kcore", "/proc/kallsyms")
	if err != nil {
		return Formats{}, fmt.Errorf("kimage: running kernel: %w", err)
	}
	return f, nil
}

// runningFormats is Running with the paths of kcore and kallsyms.
func runningFormats(kcore, kallsyms string) (Formats, error) {
	syms, err := readSymbols(kallsyms, "_text", "__start_rodata", "__end_rodata", "_sdata", "_edata")
	if err != nil && !errors.Is(err, fs.ErrNotExist) { // no kallsyms: CONFIG_KALLSYMS=n
		return Formats{}, err
	}
	f, err := os.Open(kcore)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return Formats{}, fmt.Errorf("no %s: the kernel was built without CONFIG_PROC_KCORE", kcore)
	case errors.Is(err, fs.ErrPermission):
		return Formats{}, fmt.Errorf("%w (reading the kernel's memory needs root: CAP_SYS_RAWIO, and no kernel lockdown)", err)
	case err != nil:
		return Formats{}, err
	}
	defer f.Close()
	core, err := elf.NewFile(f)
	if err != nil {
		return Formats{}, fmt.Errorf("%s: %w", kcore, err)
	}

	seg := textSegment(core, syms["_text"])
	if seg == nil {
		return Formats{}, fmt.Errorf("%s has no segment that maps the kernel image (in [%#x, %#x))", kcore, uint64(kernelMapStart), uint64(kernelMapEnd))
	}
	// Read-only data holds the string literals, data the memfd handler.
	// The rest of the image holds code, and .bss, where the kernel log
	// and other runtime data live: better not read, since a format string
	// logged there would make a format ambiguous. Without the symbols
	// (kallsyms without CONFIG_KALLSYMS_ALL), read the whole mapping.
	ranges := [][2]uint64{{seg.Vaddr, seg.Vaddr + seg.Filesz}}
	if r, d := [2]uint64{syms["__start_rodata"], syms["__end_rodata"]}, [2]uint64{syms["_sdata"], syms["_edata"]}; within(seg, r) && within(seg, d) {
		ranges = [][2]uint64{r, d}
	}
	var s scanner
	for _, r := range ranges {
		sr := io.NewSectionReader(f, int64(seg.Off+(r[0]-seg.Vaddr)), int64(r[1]-r[0]))
		if _, err := s.readFrom(sr); err != nil {
			return Formats{}, fmt.Errorf("%s: %w", kcore, err)
		}
	}
	return formatsOf(&s.seen)
}

// textSegment returns the PT_LOAD segment of the kernel image mapping: the
// one that holds text (the address of _text), or else the lowest one in
// the mapping's range.
func textSegment(core *elf.File, text uint64) *elf.Prog {
	var seg *elf.Prog
	for _, p := range core.Progs {
		if p.Type != elf.PT_LOAD || p.Vaddr < kernelMapStart || p.Vaddr >= kernelMapEnd {
			continue
		}
		if text != 0 && p.Vaddr <= text && text < p.Vaddr+p.Filesz {
			return p
		}
		if seg == nil || p.Vaddr < seg.Vaddr {
			seg = p
		}
	}
	if text != 0 {
		return nil
	}
	return seg
}

// within reports whether the address range r is a non-empty part of seg.
func within(seg *elf.Prog, r [2]uint64) bool {
	return r[0] != 0 && seg.Vaddr <= r[0] && r[0] < r[1] && r[1] <= seg.Vaddr+seg.Filesz
}

// readSymbols returns the addresses of the named symbols of the kernel
// proper in kallsyms (in the format of /proc/kallsyms). A symbol that is
// absent, or whose address is hidden (shown as 0), is left out.
func readSymbols(kallsyms string, names ...string) (map[string]uint64, error) {
	f, err := os.Open(kallsyms)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	syms := make(map[string]uint64, len(names))
	left := len(names)
	// The kernel formats each line as it is read, which takes most of the
	// time: read in large blocks, and stop once every name is seen.
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 256<<10), 256<<10)
	for left > 0 && sc.Scan() {
		// "ffffffff81000000 T _text", with "\t[module]" for modules.
		addr, rest, ok := bytes.Cut(sc.Bytes(), []byte{' '})
		if !ok || len(rest) < 3 || rest[1] != ' ' {
			continue
		}
		name := rest[2:]
		for _, n := range names {
			if string(name) != n {
				continue
			}
			left--
			if a, err := strconv.ParseUint(string(addr), 16, 64); err == nil && a != 0 {
				syms[n] = a
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", kallsyms, err)
	}
	return syms, nil
}
