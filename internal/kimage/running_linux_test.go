//go:build linux && amd64

package kimage_test

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/liveupdate/luo/internal/kimage"
)

// A fake kernel image mapping, as /proc/kcore shows it with KASLR: text,
// then read-only data with the LUO and KHO literals, data with the memfd
// handler, and .bss holding a stray "luo-v9" (as a kernel log could).
const (
	textAddr   = 0xffffffffa3e00000
	rodataAddr = textAddr + 0x4000
	rodataEnd  = textAddr + 0x8000
	dataAddr   = textAddr + 0x9000
	dataEnd    = textAddr + 0xa000
	imageSize  = 0x10000
	directMap  = 0xffff888000000000
)

// fakeKcore writes an ELF core file like /proc/kcore: a note, a direct
// map segment holding a stray "memfd-v7", the kernel image mapping and,
// if modules is set, a module segment just past the image mapping's range
// with another stray string. It returns the file's path.
func fakeKcore(t *testing.T, modules bool) string {
	t.Helper()
	image := make([]byte, imageSize)
	copy(image[rodataAddr-textAddr+0x100:], "blob-size\x00kho-v4\x00compatible\x00LUO\x00luo-v5\x00./include/")
	copy(image[dataAddr-textAddr+0x200:], "\x00\x00\xc0\x76\x03\xa5\xff\xff\xff\xffmemfd-v2\x00\x00\x00\x00")
	copy(image[dataEnd-textAddr+0x300:], "<6>luo: incoming luo-v9\x00")
	segs := []struct {
		typ   elf.ProgType
		vaddr uint64
		data  []byte
	}{
		{elf.PT_NOTE, 0, []byte("CORE\x00\x00\x00\x00")},
		{elf.PT_LOAD, directMap, []byte("\x00memfd-v7\x00")},
		{elf.PT_LOAD, textAddr, image},
	}
	if modules {
		segs = append(segs, struct {
			typ   elf.ProgType
			vaddr uint64
			data  []byte
		}{elf.PT_LOAD, 0xffffffffc0000000, []byte("\x00kho-v9\x00")})
	}
	const ehsize, phsize = 64, 56
	off := uint64(ehsize + phsize*len(segs))
	var b bytes.Buffer
	hdr := elf.Header64{
		Type: uint16(elf.ET_CORE), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Phoff: ehsize, Ehsize: ehsize, Phentsize: phsize, Phnum: uint16(len(segs)),
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS], hdr.Ident[elf.EI_DATA], hdr.Ident[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)
	binary.Write(&b, binary.LittleEndian, hdr)
	for _, s := range segs {
		n := uint64(len(s.data))
		binary.Write(&b, binary.LittleEndian, elf.Prog64{
			Type: uint32(s.typ), Flags: uint32(elf.PF_R | elf.PF_W | elf.PF_X), Off: off, Vaddr: s.vaddr, Paddr: s.vaddr, Filesz: n, Memsz: n,
		})
		off += n
	}
	for _, s := range segs {
		b.Write(s.data)
	}
	return writeFile(t, "kcore", b.Bytes())
}

// kallsyms returns /proc/kallsyms of the fake kernel, with only the
// symbols named (all if none), with addresses hidden if hide is set.
func kallsyms(t *testing.T, hide bool, only ...string) string {
	t.Helper()
	var b strings.Builder
	for _, s := range []struct {
		addr uint64
		typ  byte
		name string
	}{
		{textAddr, 'T', "_text"}, {textAddr, 'T', "_stext"}, {textAddr + 0x100, 't', "luo_early_startup"},
		{rodataAddr, 'D', "__start_rodata"}, {rodataAddr + 0x100, 'r', "__func__.1"}, {rodataEnd, 'D', "__end_rodata"},
		{dataAddr, 'D', "_sdata"}, {dataAddr + 0x200, 'd', "memfd_luo_handler"}, {dataEnd, 'D', "_edata"},
		{textAddr + imageSize, 'B', "_end"}, {0xffffffffc0000000, 't', "init_module\t[fake]"},
	} {
		if len(only) > 0 && !strings.Contains(strings.Join(only, " "), s.name) {
			continue
		}
		addr := s.addr
		if hide {
			addr = 0
		}
		fmt.Fprintf(&b, "%016x %c %s\n", addr, s.typ, s.name)
	}
	return writeFile(t, "kallsyms", []byte(b.String()))
}

func TestRunningFormats(t *testing.T) {
	t.Parallel()
	kcore := fakeKcore(t, true)
	missing := filepath.Join(t.TempDir(), "missing")
	for _, tt := range []struct {
		name, kcore, kallsyms string
		want                  kimage.Formats
		is                    error
		says                  string
	}{
		{name: "rodata and data", kcore: kcore, kallsyms: kallsyms(t, false), want: v5},
		// Without the symbols, the whole image mapping is read, .bss
		// included, and the stray string there makes LUO ambiguous.
		{name: "no kallsyms", kcore: kcore, kallsyms: missing, is: kimage.ErrAmbiguous, says: "ambiguous Live Update format: luo-v5 and luo-v9"},
		{name: "hidden addresses", kcore: kcore, kallsyms: kallsyms(t, true), is: kimage.ErrAmbiguous, says: "ambiguous Live Update format: luo-v5 and luo-v9"},
		{name: "no data symbols", kcore: kcore, kallsyms: kallsyms(t, false, "_text", "__start_rodata", "__end_rodata"), is: kimage.ErrAmbiguous},
		{name: "no _text", kcore: kcore, kallsyms: kallsyms(t, false, "__start_rodata", "__end_rodata", "_sdata", "_edata"), want: v5},
		{name: "_text elsewhere", kcore: fakeKcore(t, false), kallsyms: func() string {
			b, _ := os.ReadFile(kallsyms(t, false))
			return writeFile(t, "kallsyms", bytes.ReplaceAll(b, []byte("ffffffffa3e00000 T _text"), []byte("ffffffff81000000 T _text")))
		}(), says: "has no segment that maps the kernel image"},
		{name: "no kcore", kcore: missing, kallsyms: kallsyms(t, false), says: "built without CONFIG_PROC_KCORE"},
		{name: "kcore not ELF", kcore: writeFile(t, "kcore", bytes.Repeat([]byte("not an ELF file\n"), 16)), kallsyms: kallsyms(t, false), says: "bad magic number"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := kimage.RunningFormats(tt.kcore, tt.kallsyms)
			if tt.is == nil && tt.says == "" {
				if err != nil || got != tt.want {
					t.Fatalf("RunningFormats = %v, %v; want %v", got, err, tt.want)
				}
				return
			}
			if err == nil || (tt.is != nil && !errors.Is(err, tt.is)) || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("RunningFormats = %v, %v; want an error (%v) saying %q", got, err, tt.is, tt.says)
			}
		})
	}
}
