//go:build vmguest

package luo_test

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/liveupdate/luo"
	"github.com/liveupdate/luo/internal/vm"
	"github.com/liveupdate/luo/memfd"
)

var benchFlag = flag.Bool("luo.bench", false, "run the preserve/retrieve benchmark (make bench)")

// benchSizes are the N of the benchmark and how many rounds each gets.
var benchSizes = []struct{ n, rounds int }{{1, 1000}, {100, 100}, {1000, 10}}

// TestBenchPreserveRetrieve times preserve (stage 1) and retrieve (stage 2,
// after the kexec) of N one-page memfds through package luo and through the
// same loop of raw ioctl(2) calls, alternating the two in every round, and
// prints the medians and their ratio.
func TestBenchPreserveRetrieve(t *testing.T) {
	if !*benchFlag {
		t.Skip("benchmark: run with make bench")
	}
	var out strings.Builder
	switch vm.Stage() {
	case 1:
		fmt.Fprintf(&out, "preserve (CREATE_SESSION + N x PRESERVE_FD), kernel %s\n", vm.Release())
		benchTable(t, &out, func(variant string, n, round int) time.Duration {
			files := make([]*os.File, n)
			for i := range files {
				f, err := memfd.New("bench", 4096)
				if err != nil {
					t.Fatal(err)
				}
				f.WriteAt([]byte("payload!"), 0)
				files[i] = f
			}
			name := fmt.Sprintf("bench-%s-%d-%d", variant, n, round)
			start := time.Now()
			if variant == "luo" {
				dev, err := luo.Open()
				if err != nil {
					t.Fatal(err)
				}
				s, err := dev.CreateSession(name)
				if err != nil {
					t.Fatal(err)
				}
				for i, f := range files {
					if err := s.PreserveFD(f, uint64(i)); err != nil {
						t.Fatal(err)
					}
				}
				dev.Close()
				vm.Hold(s)
			} else {
				fd, err := unix.Open(luo.DevicePath, unix.O_RDWR|unix.O_CLOEXEC, 0)
				if err != nil {
					t.Fatal(err)
				}
				cs := luo.LiveupdateIoctlCreateSession{Size: 72}
				copy(cs.Name[:], name)
				if err := rawIoctl(fd, luo.LIVEUPDATE_IOCTL_CREATE_SESSION, unsafe.Pointer(&cs)); err != nil {
					t.Fatal(err)
				}
				for i, f := range files {
					p := luo.LiveupdateSessionPreserveFd{Size: 16, Fd: int32(f.Fd()), Token: uint64(i)}
					if err := rawIoctl(int(cs.Fd), luo.LIVEUPDATE_SESSION_PRESERVE_FD, unsafe.Pointer(&p)); err != nil {
						t.Fatal(err)
					}
				}
				unix.Close(fd)
				vm.Hold(os.NewFile(uintptr(cs.Fd), name))
			}
			d := time.Since(start)
			for _, f := range files {
				f.Close()
			}
			return d
		})
	case 2:
		fmt.Fprintf(&out, "retrieve (RETRIEVE_SESSION + N x RETRIEVE_FD + FINISH), kernel %s\n", vm.Release())
		benchTable(t, &out, func(variant string, n, round int) time.Duration {
			name := fmt.Sprintf("bench-%s-%d-%d", variant, n, round)
			files := make([]*os.File, 0, n)
			start := time.Now()
			if variant == "luo" {
				dev, err := luo.Open()
				if err != nil {
					t.Fatal(err)
				}
				s, err := dev.RetrieveSession(name)
				if err != nil {
					t.Fatal(err)
				}
				for i := range n {
					f, err := s.RetrieveFD(uint64(i))
					if err != nil {
						t.Fatal(err)
					}
					files = append(files, f)
				}
				if err := s.Finish(); err != nil {
					t.Fatal(err)
				}
				dev.Close()
				s.Close()
			} else {
				fd, err := unix.Open(luo.DevicePath, unix.O_RDWR|unix.O_CLOEXEC, 0)
				if err != nil {
					t.Fatal(err)
				}
				rs := luo.LiveupdateIoctlRetrieveSession{Size: 72}
				copy(rs.Name[:], name)
				if err := rawIoctl(fd, luo.LIVEUPDATE_IOCTL_RETRIEVE_SESSION, unsafe.Pointer(&rs)); err != nil {
					t.Fatal(err)
				}
				for i := range n {
					r := luo.LiveupdateSessionRetrieveFd{Size: 16, Token: uint64(i)}
					if err := rawIoctl(int(rs.Fd), luo.LIVEUPDATE_SESSION_RETRIEVE_FD, unsafe.Pointer(&r)); err != nil {
						t.Fatal(err)
					}
					files = append(files, os.NewFile(uintptr(r.Fd), "raw"))
				}
				fin := luo.LiveupdateSessionFinish{Size: 8}
				if err := rawIoctl(int(rs.Fd), luo.LIVEUPDATE_SESSION_FINISH, unsafe.Pointer(&fin)); err != nil {
					t.Fatal(err)
				}
				unix.Close(fd)
				unix.Close(int(rs.Fd))
			}
			d := time.Since(start)
			for _, f := range files {
				f.Close()
			}
			return d
		})
	}
	fmt.Print(out.String())
}

// benchTable runs op for every size, round and variant (alternating which
// goes first) and writes the median per variant, their ratio luo/raw, and
// the median of the per-round ratios. The last one is paired: the two runs
// of a round are back to back, so slow noise (the host's other load) hits
// both alike and cancels, where it can move one variant's median and not
// the other's.
func benchTable(t *testing.T, out *strings.Builder, op func(variant string, n, round int) time.Duration) {
	fmt.Fprintf(out, "%-6s %-7s %-14s %-14s %-8s %s\n", "N", "rounds", "luo median", "raw median", "luo/raw", "paired luo/raw")
	for _, sz := range benchSizes {
		var luoT, rawT []time.Duration
		var ratios []float64
		for r := range sz.rounds {
			order := []string{"luo", "raw"}
			if r%2 == 1 {
				order = []string{"raw", "luo"}
			}
			var l, w time.Duration
			for _, v := range order {
				d := op(v, sz.n, r)
				if v == "luo" {
					l = d
				} else {
					w = d
				}
			}
			luoT, rawT = append(luoT, l), append(rawT, w)
			ratios = append(ratios, float64(l)/float64(w))
		}
		lm, rm := median(luoT), median(rawT)
		slices.Sort(ratios)
		fmt.Fprintf(out, "%-6d %-7d %-14v %-14v %-8.3f %.3f\n", sz.n, sz.rounds, lm, rm, float64(lm)/float64(rm), ratios[len(ratios)/2])
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
