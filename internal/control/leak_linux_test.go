package control_test

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// usage is what this process holds: goroutines and open fds.
type usage struct {
	goroutines int
	fds        int
}

func (u usage) String() string { return fmt.Sprintf("%d goroutines, %d fds", u.goroutines, u.fds) }

// within reports whether u is no more than limit in both counts.
func (u usage) within(limit usage) bool {
	return u.goroutines <= limit.goroutines && u.fds <= limit.fds
}

// currentUsage counts this process's goroutines and the entries of
// /proc/self/fd (the directory's own fd included, as it is every time).
func currentUsage() usage {
	u := usage{goroutines: runtime.NumGoroutine(), fds: -1}
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		u.fds = len(ents)
	}
	return u
}

// settle polls until the process holds no more than limit, or until
// timeout. It returns the last count and whether it got there.
func settle(limit usage, timeout time.Duration) (usage, bool) {
	deadline := time.Now().Add(timeout)
	for {
		u := currentUsage()
		if u.within(limit) {
			return u, true
		}
		if time.Now().After(deadline) {
			return u, false
		}
		time.Sleep(time.Millisecond)
	}
}

// steadyUsage is what the process holds once that has not changed for
// 20 ms (or after a second), so that goroutines on their way out are not
// counted.
func steadyUsage() usage {
	deadline := time.Now().Add(time.Second)
	u := currentUsage()
	for since := time.Now(); time.Since(since) < 20*time.Millisecond && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
		if v := currentUsage(); v != u {
			u, since = v, time.Now()
		}
	}
	return u
}

// usageDump describes what the process holds, for a failure message:
// every goroutine's stack and every fd's target.
func usageDump() string {
	var b strings.Builder
	buf := make([]byte, 1<<20)
	b.Write(buf[:runtime.Stack(buf, true)])
	b.WriteString("\nfds:\n")
	ents, _ := os.ReadDir("/proc/self/fd")
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		target, _ := os.Readlink("/proc/self/fd/" + e.Name())
		names = append(names, e.Name()+" -> "+target)
	}
	slices.Sort(names)
	b.WriteString(strings.Join(names, "\n"))
	return b.String()
}
