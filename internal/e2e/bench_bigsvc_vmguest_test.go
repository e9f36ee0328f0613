//go:build vmguest

package e2e_test

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/liveupdate/luo/activation"
	"github.com/liveupdate/luo/memfd"
	"github.com/liveupdate/luo/sdnotify"
)

// bigsvc is the benchmark's service with a large state, built into the
// guest test binary like memsvc: a unit whose ExecStart= is /vmtest/test.bin
// and that sets LUO_E2E_BIGSVC=ID runs it instead of the tests. Its state
// is SIZE bytes in N memfds of SIZE/N bytes each, named b00000, b00001, ...;
// every 4 KiB page holds a pattern unique to the unit, the memfd and the
// page, except the first page of b00000, which holds the header (magic,
// generation, size, count, unit).
//
// A fresh start fills every page (outside the benchmark's timed spans),
// stores the memfds and reports generation 1. A start with its store back
// (a live update) checks, before READY, only what is cheap: the header, the
// names and sizes of all memfds, and bigsvcSamples pages spread over them;
// then it bumps the generation in the header and sends READY. Only after
// READY does it check every page of every memfd, and reports the result in
// its status:
//
//	bigsvc id=ID origin=restored gen=G size=S fds=N sample=ok full=pending
//	bigsvc id=ID origin=restored gen=G size=S fds=N sample=ok full=ok full_ms=T
//
// So the benchmark measures luod carrying the state, not the service
// reading all of it, and still fails a round whose state came back wrong.
//
// SIZE and N come from LUO_E2E_BIGSVC_SIZE and LUO_E2E_BIGSVC_N, or from
// the file bigsvcConfFile ("SIZE N") if it exists, which the benchmark
// rewrites between sizes. LUO_E2E_BIGSVC_QUIET=1 keeps the status off
// stdout (the console), for runs of many units.
const (
	bigsvcEnv      = "LUO_E2E_BIGSVC"
	bigsvcConfFile = "/run/luo-e2e-bigsvc"
	bigsvcSamples  = 64
	bigsvcPage     = 4096
	bigsvcMagic    = 0x5653474942_4f554c // "LUOBIGSV", little-endian
)

func init() {
	if id := os.Getenv(bigsvcEnv); id != "" {
		os.Exit(bigsvc(id))
	}
}

func bigsvcName(i int) string { return fmt.Sprintf("b%05d", i) }

func bigsvcIDHash(id string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	return h.Sum64()
}

// bigsvcBase is the first word of page p of memfd fd; word k of the page
// is base + k*golden.
func bigsvcBase(idh uint64, fd, p int) uint64 {
	x := idh ^ uint64(fd)<<40 ^ uint64(p)
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

const bigsvcGolden = 0x9e3779b97f4a7c15

func bigsvcWords(b []byte) []uint64 {
	return unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/8)
}

func bigsvcFill(m []byte, idh uint64, fd int) {
	w := bigsvcWords(m)
	for p := range len(m) / bigsvcPage {
		if fd == 0 && p == 0 {
			continue
		}
		base := bigsvcBase(idh, fd, p)
		page := w[p*bigsvcPage/8 : (p+1)*bigsvcPage/8]
		for k := range page {
			page[k] = base + uint64(k)*bigsvcGolden
		}
	}
}

func bigsvcPageOK(m []byte, idh uint64, fd, p int) bool {
	if fd == 0 && p == 0 {
		return true // the header, checked on its own
	}
	base := bigsvcBase(idh, fd, p)
	page := bigsvcWords(m)[p*bigsvcPage/8 : (p+1)*bigsvcPage/8]
	for k, v := range page {
		if v != base+uint64(k)*bigsvcGolden {
			return false
		}
	}
	return true
}

type bigsvcHeader struct {
	magic, gen, size, n, idh uint64
}

func (h bigsvcHeader) put(m []byte) {
	for i, v := range []uint64{h.magic, h.gen, h.size, h.n, h.idh} {
		binary.LittleEndian.PutUint64(m[8*i:], v)
	}
}

func getBigsvcHeader(m []byte) bigsvcHeader {
	g := func(i int) uint64 { return binary.LittleEndian.Uint64(m[8*i:]) }
	return bigsvcHeader{g(0), g(1), g(2), g(3), g(4)}
}

func bigsvcConf() (size int64, n int, err error) {
	s := os.Getenv("LUO_E2E_BIGSVC_SIZE") + " " + os.Getenv("LUO_E2E_BIGSVC_N")
	if b, ferr := os.ReadFile(bigsvcConfFile); ferr == nil {
		s = string(b)
	}
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("bigsvc config %q: want SIZE N", s)
	}
	size, err = strconv.ParseInt(f[0], 10, 64)
	if err == nil {
		n, err = strconv.Atoi(f[1])
	}
	if err != nil || n < 1 || size <= 0 || size%(int64(n)*bigsvcPage) != 0 {
		return 0, 0, fmt.Errorf("bigsvc config %q: want SIZE N, SIZE a multiple of N pages", s)
	}
	return size, n, nil
}

func bigsvc(id string) int {
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "bigsvc %s: %v\n", id, err)
		return 1
	}
	quiet := os.Getenv("LUO_E2E_BIGSVC_QUIET") == "1"
	notifier, err := sdnotify.Open()
	if err != nil {
		return fail(err)
	}
	fs, err := activation.Receive(&activation.Config{UnsetEnv: true})
	if err != nil {
		return fail(err)
	}
	idh := bigsvcIDHash(id)
	report := func(status string) error {
		if !quiet {
			fmt.Println(status)
		}
		return notifier.Status(status)
	}
	var full func() string // after READY: the full check's status
	if fs.Len() == 0 {
		size, n, err := bigsvcConf()
		if err != nil {
			return fail(err)
		}
		per := size / int64(n)
		for i := range n {
			f, err := memfd.New(bigsvcName(i), per)
			if err != nil {
				return fail(err)
			}
			m, err := memfd.Map(f)
			if err != nil {
				return fail(err)
			}
			bigsvcFill(m, idh, i)
			if i == 0 {
				bigsvcHeader{bigsvcMagic, 1, uint64(size), uint64(n), idh}.put(m)
			}
			if err := memfd.Unmap(m); err != nil {
				return fail(err)
			}
			if err := notifier.StoreFiles(bigsvcName(i), []*os.File{f}, nil); err != nil {
				return fail(err)
			}
			f.Close()
		}
		if err := report(fmt.Sprintf("bigsvc id=%s origin=fresh gen=1 size=%d fds=%d full=ok", id, size, n)); err != nil {
			return fail(err)
		}
	} else {
		head, check := bigsvcRestore(fs, idh)
		prefix := fmt.Sprintf("bigsvc id=%s origin=restored %s", id, head)
		if err := report(prefix + " full=pending"); err != nil {
			return fail(err)
		}
		full = func() string { return prefix + " " + check() }
	}
	if err := notifier.Ready(); err != nil {
		return fail(err)
	}
	if full != nil {
		if err := report(full()); err != nil {
			return fail(err)
		}
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	return 0
}

// bigsvcRestore checks the store it got back, cheaply, and bumps the
// generation: it returns "gen=G size=S fds=N sample=ok" (or sample=bad
// why=...) and the full check for after READY, which returns "full=ok
// full_ms=T" or "full=bad why=...".
func bigsvcRestore(fs *activation.Files, idh uint64) (string, func() string) {
	files := map[int]*os.File{}
	bad := func(why string) (string, func() string) {
		return "gen=0 sample=bad why=" + why, func() string { return "full=bad why=sample" }
	}
	for _, f := range fs.All() {
		i, err := strconv.Atoi(strings.TrimPrefix(f.Name(), "b"))
		if !strings.HasPrefix(f.Name(), "b") || err != nil || i < 0 || i >= fs.Len() || files[i] != nil {
			return bad("name:" + f.Name())
		}
		files[i] = f
	}
	maps := map[int][]byte{}
	mapped := func(i int) ([]byte, error) {
		if m, ok := maps[i]; ok {
			return m, nil
		}
		m, err := memfd.Map(files[i])
		if err == nil {
			maps[i] = m
		}
		return m, err
	}
	m0, err := mapped(0)
	if err != nil || len(m0) < bigsvcPage {
		return bad(fmt.Sprintf("map-b00000:%v", err))
	}
	h := getBigsvcHeader(m0)
	n := int(h.n)
	if h.magic != bigsvcMagic || h.idh != idh || n != fs.Len() || h.size == 0 || h.size%uint64(n) != 0 {
		return bad(fmt.Sprintf("header:%+v", h))
	}
	per := int64(h.size) / int64(n)
	for i, f := range files {
		if sz, err := memfd.Size(f); err != nil || sz != per {
			return bad(fmt.Sprintf("size-%s:%d", bigsvcName(i), sz))
		}
	}
	ppf := int(per / bigsvcPage)
	total := ppf * n
	for j := range bigsvcSamples {
		gp := j*total/bigsvcSamples + total/bigsvcSamples/2
		fd, p := gp/ppf, gp%ppf
		m, err := mapped(fd)
		if err != nil || !bigsvcPageOK(m, idh, fd, p) {
			return bad(fmt.Sprintf("page-%s:%d", bigsvcName(fd), p))
		}
	}
	h.gen++
	h.put(m0)
	head := fmt.Sprintf("gen=%d size=%d fds=%d sample=ok", h.gen, h.size, n)
	return head, func() string {
		start := time.Now()
		res := "full=ok"
		for fd := 0; fd < n && res == "full=ok"; fd++ {
			m, err := mapped(fd)
			if err != nil {
				res = fmt.Sprintf("full=bad why=map-%s", bigsvcName(fd))
				break
			}
			for p := range ppf {
				if !bigsvcPageOK(m, idh, fd, p) {
					res = fmt.Sprintf("full=bad why=page-%s:%d", bigsvcName(fd), p)
					break
				}
			}
			if fd != 0 {
				memfd.Unmap(m)
				delete(maps, fd)
			}
		}
		for _, m := range maps {
			memfd.Unmap(m)
		}
		fs.Close()
		if res == "full=ok" {
			res += fmt.Sprintf(" full_ms=%d", time.Since(start).Milliseconds())
		}
		return res
	}
}

// bigsvcStatus is a bigsvc STATUS= line, parsed.
type bigsvcStatus struct {
	id, origin, sample, full string
	gen, fds                 int
	size                     int64
	raw                      string
}

func parseBigsvc(s string) (bigsvcStatus, error) {
	st := bigsvcStatus{raw: s}
	f := strings.Fields(s)
	if len(f) == 0 || f[0] != "bigsvc" {
		return st, fmt.Errorf("not a bigsvc status: %q", s)
	}
	for _, kv := range f[1:] {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "id":
			st.id = v
		case "origin":
			st.origin = v
		case "sample":
			st.sample = v
		case "full":
			st.full = v
		case "gen":
			st.gen, _ = strconv.Atoi(v)
		case "fds":
			st.fds, _ = strconv.Atoi(v)
		case "size":
			st.size, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return st, nil
}
