//go:build linux

package supervisor

import (
	"bytes"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/fdstore"
	"github.com/liveupdate/luo/internal/notify"
	"github.com/liveupdate/luo/internal/unit"
	"github.com/liveupdate/luo/memfd"
)

// FuzzNotifyPath fuzzes the whole path of a notification inside luod:
// datagram, credentials and fds in, attribution, NotifyAccess=, the
// unit's state, MAINPID=, and the fd store out. Whatever comes in: no
// panic, no illegal state transition, no store over its limit, and every
// fd that came with a datagram is either in a store or closed (luod's fd
// count comes back to where it was once the stores are emptied).
func FuzzNotifyPath(f *testing.F) {
	for _, s := range []string{
		"READY=1", "READY=1\nSTATUS=up", "STOPPING=1", "RELOADING=1", "FDSTORE=1\nFDNAME=a", "FDSTORE=1\nFDNAME=a\nFDPOLL=0",
		"FDSTORE=1\nFDNAME=a:b", "FDSTORE=1\nFDNAME=", "FDSTOREREMOVE=1\nFDNAME=a", "FDSTOREREMOVE=1", "MAINPID=1",
		"MAINPID=-5", "MAINPID=99999999999", "NOTIFYACCESS=all", "NOTIFYACCESS=none", "NOTIFYACCESS=bogus",
		"EXTEND_TIMEOUT_USEC=18446744073709551615", "ERRNO=-1", "BARRIER=1", "RESTART_RESET=1", "WATCHDOG=1",
		"FDSTORE=1\nFDSTOREREMOVE=1\nFDNAME=a", "\\", "a\x00b", strings.Repeat("FDSTORE=1\n", 100),
	} {
		f.Add([]byte(s), uint8(1), uint8(0), uint8(0))
	}
	f.Fuzz(func(t *testing.T, payload []byte, nfds, kinds, sender uint8) {
		m := fuzzManager(t)
		before := openFDs(t)
		a, b := m.units["a.service"], m.units["b.service"]
		var peers []*os.File
		for round := range 2 { // the same datagram twice: state changes in between
			msg, err := notify.Parse(payload)
			if err != nil {
				continue // dropped whole, as the socket would
			}
			switch sender % 4 {
			case 0:
				msg.PID = a.mainPID
			case 1:
				msg.PID = b.mainPID
			case 2:
				msg.PID = 1 << 22 // nobody's
			default:
				msg.PID = a.mainPID
				msg.UID = 65534
			}
			for i := range int(nfds % 8) {
				f, peer := fuzzFile(t, (int(kinds)>>i)%4, round)
				msg.Files = append(msg.Files, f)
				if peer != nil {
					peers = append(peers, peer)
				}
			}
			m.handleNotify(msg)
		}
		for _, u := range m.units {
			if u.store.Max() > 0 && u.store.Used() > u.store.Max() {
				t.Errorf("%s uses %d slots, FileDescriptorStoreMax=%d", u.name, u.store.Used(), u.store.Max())
			}
			if _, ok := activeOf[u.state]; !ok {
				t.Errorf("%s in unknown state %q", u.name, u.state)
			}
			u.stopTimer()
			u.flushStore("fuzz")
		}
		for _, p := range peers {
			p.Close()
		}
		for m.closer.busy() { // closes run off the loop
			time.Sleep(time.Millisecond)
		}
		if log := m.logBuf.String(); strings.Contains(log, "illegal state transition") {
			t.Errorf("illegal transition:\n%s", log)
		}
		if after := openFDs(t); after != before {
			t.Errorf("%d fds open after the datagram, %d before", after, before)
		}
	})
}

// fuzzManager is a Manager with two units whose main process is this
// test (a, notify, a store of 4) and its parent (b, simple, main only).
type fuzzTestManager struct {
	*Manager
	logBuf *bytes.Buffer
}

func fuzzManager(t *testing.T) fuzzTestManager {
	t.Helper()
	var buf bytes.Buffer
	p, err := fdstore.NewPoller()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	m := &Manager{log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})),
		units: map[string]*Unit{}, bySID: map[int]*Unit{}, exited: map[int]exitedMain{},
		events: make(chan event, 1<<16), poller: p}
	for name, text := range map[string]string{
		"a.service": "[Service]\nType=notify\nExecStart=/bin/true\nFileDescriptorStoreMax=4\nFileDescriptorStorePreserve=yes\nNotifyAccess=main\n",
		"b.service": "[Service]\nType=simple\nExecStart=/bin/true\nFileDescriptorStoreMax=2\nNotifyAccess=all\n",
	} {
		d, err := unit.Parse(name, strings.NewReader(text))
		if err != nil {
			t.Fatal(err)
		}
		u := newUnit(m, name)
		u.setDef(d)
		m.units[name] = u
	}
	m.units["a.service"].mainPID, m.units["a.service"].state = os.Getpid(), StateStart
	m.units["b.service"].mainPID, m.units["b.service"].state = os.Getppid(), StateRunning
	return fuzzTestManager{m, &buf}
}

// fuzzFile makes a file of one of four kinds, and its peer when it has
// one that the caller must close.
func fuzzFile(t *testing.T, kind, n int) (f, peer *os.File) {
	t.Helper()
	switch kind {
	case 0:
		f, err := memfd.New("fuzz", 0)
		if err != nil {
			t.Fatal(err)
		}
		return f, nil
	case 1:
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		if n%2 == 0 {
			w.Close() // a dead pipe: POLLHUP at once
			return r, nil
		}
		return r, w
	case 2:
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		return os.NewFile(uintptr(fds[0]), "sock"), os.NewFile(uintptr(fds[1]), "peer")
	}
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	return f, nil
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
