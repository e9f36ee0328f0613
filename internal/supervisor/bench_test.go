//go:build linux

package supervisor_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/control"
	"github.com/liveupdate/luo/internal/luodtest"
	"github.com/liveupdate/luo/internal/notify"
	"github.com/liveupdate/luo/memfd"
	"github.com/liveupdate/luo/sdnotify"
)

// BenchmarkNotifyIngest measures FDSTORE=1 messages with one memfd each,
// ingested per second: by luod end to end (a unit sends b.N messages, luod
// attributes, checks and stores every fd), side by side with the baseline
// of a bare notify socket that only receives them (no luod).
func BenchmarkNotifyIngest(b *testing.B) {
	// Baseline: receive only.
	dir := b.TempDir()
	sock, err := notify.Listen(filepath.Join(dir, "notify"))
	if err != nil {
		b.Fatal(err)
	}
	defer sock.Close()
	n, err := sdnotify.OpenAddr(sock.Path())
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	b.ResetTimer()
	start := time.Now()
	go func() {
		for range b.N {
			m, _ := memfd.New("spam", 0)
			n.StoreFiles("spam", []*os.File{m}, nil)
			m.Close()
		}
	}()
	for range b.N {
		msg, err := sock.Receive(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		msg.Close()
	}
	raw := time.Since(start)
	b.StopTimer()

	// luod: a unit sends a batch of messages, then READY=1; it is active
	// once luod stored them all. Batches stay well below the fd limit of
	// an unprivileged container.
	const batch = 5000
	d := luodtest.Start(b, map[string]string{"spam.service": svc(fmt.Sprintf("-spam %d", batch)) +
		fmt.Sprintf("FileDescriptorStoreMax=%d\n", batch)}, "-log-level", "error")
	d.WaitUnit("spam.service", "active", active)
	var luod time.Duration
	for left := b.N; left > 0; left -= batch {
		n := min(left, batch)
		d.MustCall(control.MethodStopUnit, control.UnitName{Name: "spam.service"}, nil)
		d.MustCall(control.MethodCleanUnit, control.CleanParams{Name: "spam.service", What: []string{"fdstore"}}, nil)
		d.WriteUnit("spam.service", svc(fmt.Sprintf("-spam %d", n))+fmt.Sprintf("FileDescriptorStoreMax=%d\n", batch))
		d.MustCall(control.MethodReload, nil, nil)
		b.StartTimer()
		start := time.Now()
		d.MustCall(control.MethodStartUnit, control.UnitName{Name: "spam.service"}, nil)
		luod += time.Since(start)
		b.StopTimer()
		if got := d.Unit("spam.service").FDStoreCount; got != n {
			b.Fatalf("stored %d of %d", got, n)
		}
	}
	b.ReportMetric(float64(b.N)/luod.Seconds(), "luod-msgs/s")
	b.ReportMetric(float64(b.N)/raw.Seconds(), "raw-msgs/s")
	b.ReportMetric(luod.Seconds()/raw.Seconds(), "luod/raw")
}

// BenchmarkRestart100FDs measures a restart of a Type=notify service whose
// store holds 100 memfds, handed back through LISTEN_FDS: from the stop to
// READY of the new instance. The baseline is the same restart with an
// empty store.
func BenchmarkRestart100FDs(b *testing.B) {
	// Restarted b.N times: no start limit.
	const noLimit = "[Unit]\nStartLimitIntervalSec=0\n"
	d := luodtest.Start(b, map[string]string{
		"full.service":  noLimit + svc(`-spam 100`) + "FileDescriptorStoreMax=100\n",
		"empty.service": noLimit + svc(``),
	}, "-log-level", "warn")
	d.WaitUnit("full.service", "active", active)
	d.WaitUnit("empty.service", "active", active)
	if n := d.Unit("full.service").FDStoreCount; n != 100 {
		b.Fatalf("stored %d", n)
	}
	// From now on the service stores nothing more: the store stays at 100.
	d.WriteUnit("full.service", noLimit+svc(``)+"FileDescriptorStoreMax=100\n")
	d.MustCall(control.MethodReload, nil, nil)
	var full, empty time.Duration
	b.ResetTimer()
	for range b.N {
		for _, u := range []struct {
			name string
			d    *time.Duration
		}{{"full.service", &full}, {"empty.service", &empty}} {
			start := time.Now()
			d.MustCall(control.MethodRestartUnit, control.UnitName{Name: u.name}, nil)
			*u.d += time.Since(start)
		}
	}
	b.StopTimer()
	if n := d.Unit("full.service").FDStoreCount; n != 100 {
		b.Fatalf("store has %d after the restarts", n)
	}
	b.ReportMetric(float64(full.Microseconds())/float64(b.N)/1000, "ms/restart-100fds")
	b.ReportMetric(float64(empty.Microseconds())/float64(b.N)/1000, "ms/restart-0fds")
	b.ReportMetric(float64(full)/float64(empty), "100fds/0fds")
}

// BenchmarkThousandUnits measures luod with 1,000 running units: its
// resident memory and fd count once they are all up, and again after
// 1,000 dumps of a store of 100 memfds. It reports them as metrics; one
// iteration is the whole measurement (run with -benchtime 1x).
func BenchmarkThousandUnits(b *testing.B) {
	units := map[string]string{"store.service": svc(`-spam 100`) + "FileDescriptorStoreMax=100\n"}
	for i := range 999 {
		units[fmt.Sprintf("u%03d.service", i)] = "[Service]\nType=simple\nExecStart=/bin/sleep 100000\n"
	}
	for range b.N {
		d := luodtest.Start(b, units, "-log-level", "warn")
		deadline := time.Now().Add(5 * time.Minute)
		for {
			var us control.Units
			d.MustCall(control.MethodListUnits, nil, &us)
			up := 0
			for _, u := range us.Units {
				if u.ActiveState == "active" {
					up++
				}
			}
			if up == 1000 && d.Unit("store.service").FDStoreCount == 100 {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%d of 1,000 units up", up)
			}
			time.Sleep(100 * time.Millisecond)
		}
		b.ReportMetric(float64(rss(b, d.PID()))/(1<<20), "boot-rss-MiB")
		b.ReportMetric(float64(luodtest.FDs(b, d.PID())), "boot-fds")
		for range 1000 {
			d.MustCall(control.MethodDumpFDStore, control.UnitName{Name: "store.service"}, nil)
		}
		b.ReportMetric(float64(rss(b, d.PID()))/(1<<20), "dumps-rss-MiB")
		b.ReportMetric(float64(luodtest.FDs(b, d.PID())), "dumps-fds")
	}
}

// rss is the resident memory of pid in bytes (VmRSS).
func rss(b *testing.B, pid int) int64 {
	b.Helper()
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.SplitSeq(string(s), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kb)
			return kb << 10
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

// BenchmarkExecShim measures what the exec shim adds to starting a
// service: fork and exec of /bin/true directly (the baseline), through
// luod-exec, and through luod's own binary (luod --exec-shim, the fallback
// when luod-exec is not installed), all in the same run. With LISTEN_FDS
// set, as for a service with a store.
func BenchmarkExecShim(b *testing.B) {
	bin := luodtest.Binaries(b)
	truePath := "/bin/true"
	if _, err := os.Stat(truePath); err != nil {
		b.Skip("no /bin/true")
	}
	env := []string{"PATH=/usr/bin:/bin", "LISTEN_FDS=0"}
	run := func(b *testing.B, argv []string) {
		for b.Loop() {
			pid, err := syscall.ForkExec(argv[0], argv, &syscall.ProcAttr{Env: env, Files: []uintptr{0, 1, 2}})
			if err != nil {
				b.Fatal(err)
			}
			var ws syscall.WaitStatus
			if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil || ws.ExitStatus() != 0 {
				b.Fatalf("%v: %v, %v", argv, err, ws)
			}
		}
	}
	b.Run("direct", func(b *testing.B) { run(b, []string{truePath}) })
	b.Run("luod-exec", func(b *testing.B) { run(b, []string{filepath.Join(bin, "luod-exec"), truePath, "true"}) })
	b.Run("luod--exec-shim", func(b *testing.B) { run(b, []string{filepath.Join(bin, "luod"), "--exec-shim", truePath, "true"}) })
}
