package sdnotify_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/sdnotifytest"
	"github.com/liveupdate/luo/sdnotify"
	"golang.org/x/sys/unix"
)

// open returns a fake manager and a Notifier for it.
func open(t *testing.T) (*sdnotifytest.Manager, *sdnotify.Notifier) {
	t.Helper()
	m := sdnotifytest.New(t)
	n, err := sdnotify.OpenAddr(m.Addr())
	if err != nil {
		t.Fatalf("OpenAddr(%q): %v", m.Addr(), err)
	}
	t.Cleanup(func() { n.Close() })
	return m, n
}

// receive waits up to 10 seconds for a datagram and checks the parts that
// every valid notification shares: no truncation, our credentials.
func receive(t *testing.T, m *sdnotifytest.Manager) *sdnotifytest.Datagram {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := m.Receive(ctx)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	if d.Trunc || d.CTrunc {
		t.Errorf("datagram truncated: MSG_TRUNC %v, MSG_CTRUNC %v", d.Trunc, d.CTrunc)
	}
	want := unix.Ucred{Pid: int32(os.Getpid()), Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid())}
	if d.Creds == nil {
		t.Errorf("no SCM_CREDENTIALS")
	} else if *d.Creds != want {
		t.Errorf("credentials = %+v, want %+v", *d.Creds, want)
	}
	return d
}

// controlTypes returns the SOL_SOCKET control message types of d, in order,
// and the number of fds in SCM_RIGHTS.
func controlTypes(t *testing.T, d *sdnotifytest.Datagram) (types []int32, nfds int) {
	t.Helper()
	msgs, err := unix.ParseSocketControlMessage(d.OOB)
	if err != nil {
		t.Fatalf("ParseSocketControlMessage: %v", err)
	}
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_SOCKET {
			t.Errorf("control message of level %d", m.Header.Level)
			continue
		}
		types = append(types, m.Header.Type)
		if m.Header.Type == unix.SCM_RIGHTS {
			nfds += len(m.Data) / 4
		}
	}
	return types, nfds
}

func fstat(t *testing.T, f *os.File) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	sc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := sc.Control(func(fd uintptr) { serr = unix.Fstat(int(fd), &st) }); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatalf("fstat %s: %v", f.Name(), serr)
	}
	return st
}

// testFiles returns n distinct open files of different kinds.
func testFiles(t *testing.T, n int) []*os.File {
	t.Helper()
	var files []*os.File
	for i := 0; len(files) < n; i++ {
		switch i % 3 {
		case 0:
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close(); w.Close() })
			files = append(files, r)
		case 1:
			f, err := os.CreateTemp(t.TempDir(), "f")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
			files = append(files, f)
		case 2:
			fd, err := unix.MemfdCreate("sdnotify-test", unix.MFD_CLOEXEC)
			if err != nil {
				t.Fatal(err)
			}
			f := os.NewFile(uintptr(fd), "memfd")
			t.Cleanup(func() { f.Close() })
			files = append(files, f)
		}
	}
	return files
}

func TestNotifyPayloads(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		call func(*sdnotify.Notifier) error
		want string
	}{
		{"Ready", (*sdnotify.Notifier).Ready, "READY=1"},
		{"Stopping", (*sdnotify.Notifier).Stopping, "STOPPING=1"},
		{"Watchdog", (*sdnotify.Notifier).Watchdog, "WATCHDOG=1"},
		{"Status", func(n *sdnotify.Notifier) error { return n.Status("serving 3 clients: ok") }, "STATUS=serving 3 clients: ok"},
		{"Status UTF-8", func(n *sdnotify.Notifier) error { return n.Status("caf\u00e9") }, "STATUS=caf\u00e9"},
		{"Status empty", func(n *sdnotify.Notifier) error { return n.Status("") }, "STATUS="},
		{"Errno", func(n *sdnotify.Notifier) error { return n.Errno(syscall.ENOENT) }, "ERRNO=2"},
		{"ExtendTimeout", func(n *sdnotify.Notifier) error { return n.ExtendTimeout(1500 * time.Millisecond) }, "EXTEND_TIMEOUT_USEC=1500000"},
		{"ExtendTimeout rounds up", func(n *sdnotify.Notifier) error { return n.ExtendTimeout(1001 * time.Nanosecond) }, "EXTEND_TIMEOUT_USEC=2"},
		{"MainPID", func(n *sdnotify.Notifier) error { return n.MainPID(4242) }, "MAINPID=4242"},
		{"RemoveFiles", func(n *sdnotify.Notifier) error { return n.RemoveFiles("db") }, "FDSTOREREMOVE=1\nFDNAME=db"},
		{"Notify several", func(n *sdnotify.Notifier) error { return n.Notify("READY=1", "STATUS=up", "X_LUO=a=b") }, "READY=1\nSTATUS=up\nX_LUO=a=b"},
		{"Notify max size", func(n *sdnotify.Notifier) error { return n.Notify("STATUS=" + strings.Repeat("s", 4089)) }, "STATUS=" + strings.Repeat("s", 4089)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, n := open(t)
			if err := tt.call(n); err != nil {
				t.Fatalf("call: %v", err)
			}
			d := receive(t, m)
			if string(d.Payload) != tt.want {
				t.Errorf("payload = %q, want %q", d.Payload, tt.want)
			}
			if len(d.Files) != 0 {
				t.Errorf("received %d files, want none", len(d.Files))
			}
			types, _ := controlTypes(t, d)
			if len(types) != 1 || types[0] != unix.SCM_CREDENTIALS {
				t.Errorf("control messages %v, want only SCM_CREDENTIALS", types)
			}
			m.ExpectNone(t)
		})
	}
}

func TestReloading(t *testing.T) {
	t.Parallel()
	m, n := open(t)
	var before, after unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &before)
	if err := n.Reloading(); err != nil {
		t.Fatal(err)
	}
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &after)
	d := receive(t, m)
	lines := d.Lines()
	if len(lines) != 2 || lines[0] != "RELOADING=1" || !strings.HasPrefix(lines[1], "MONOTONIC_USEC=") {
		t.Fatalf("payload = %q, want RELOADING=1 and MONOTONIC_USEC=", d.Payload)
	}
	usec, err := strconv.ParseUint(strings.TrimPrefix(lines[1], "MONOTONIC_USEC="), 10, 64)
	if err != nil {
		t.Fatalf("MONOTONIC_USEC: %v", err)
	}
	lo := uint64(before.Nano() / 1e3)
	hi := uint64(after.Nano() / 1e3)
	if usec < lo || usec > hi {
		t.Errorf("MONOTONIC_USEC=%d, want between %d and %d", usec, lo, hi)
	}
}

func TestStoreFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		fdname string
		nfiles int
		opts   *sdnotify.StoreOptions
		want   string
	}{
		{"nil options", "db", 1, nil, "FDSTORE=1\nFDNAME=db"},
		{"default options", "sessions", 3, &sdnotify.StoreOptions{}, "FDSTORE=1\nFDNAME=sessions"},
		{"no poll", "mem", 2, &sdnotify.StoreOptions{NoPoll: true}, "FDSTORE=1\nFDNAME=mem\nFDPOLL=0"},
		{"odd but valid name", " a!~\"=", 1, nil, "FDSTORE=1\nFDNAME= a!~\"="},
		{"max name", strings.Repeat("n", 255), 1, nil, "FDSTORE=1\nFDNAME=" + strings.Repeat("n", 255)},
		{"max files", "many", sdnotify.MaxFiles, &sdnotify.StoreOptions{NoPoll: true}, "FDSTORE=1\nFDNAME=many\nFDPOLL=0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, n := open(t)
			files := testFiles(t, 3)
			for len(files) < tt.nfiles { // the same file may be sent many times
				files = append(files, files[len(files)%3])
			}
			files = files[:tt.nfiles]
			if err := n.StoreFiles(tt.fdname, files, tt.opts); err != nil {
				t.Fatalf("StoreFiles: %v", err)
			}
			d := receive(t, m)
			if string(d.Payload) != tt.want {
				t.Errorf("payload = %q, want %q", d.Payload, tt.want)
			}
			types, nfds := controlTypes(t, d)
			if len(types) != 2 || nfds != tt.nfiles {
				t.Errorf("control messages %v with %d fds, want SCM_CREDENTIALS and SCM_RIGHTS with %d", types, nfds, tt.nfiles)
			}
			if len(d.Files) != len(files) {
				t.Fatalf("received %d files, want %d", len(d.Files), len(files))
			}
			for i, got := range d.Files {
				w, g := fstat(t, files[i]), fstat(t, got)
				if w.Dev != g.Dev || w.Ino != g.Ino {
					t.Errorf("file %d: received dev/ino %d/%d, sent %d/%d", i, g.Dev, g.Ino, w.Dev, w.Ino)
				}
			}
			m.ExpectNone(t)
		})
	}
}

func TestNotifyWithFilesKeepsCallerFiles(t *testing.T) {
	t.Parallel()
	m, n := open(t)
	r, w, err := os.Pipe() // non-blocking, in the runtime poller
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	nonblock := func() bool {
		sc, _ := r.SyscallConn()
		var nb bool
		sc.Control(func(fd uintptr) {
			fl, _ := unix.FcntlInt(fd, unix.F_GETFL, 0)
			nb = fl&unix.O_NONBLOCK != 0
		})
		return nb
	}
	if !nonblock() {
		t.Fatal("os.Pipe read end is blocking; test assumption broken")
	}
	if err := n.NotifyWithFiles([]*os.File{r}, "X_TEST=1"); err != nil {
		t.Fatal(err)
	}
	d := receive(t, m)
	if string(d.Payload) != "X_TEST=1" || len(d.Files) != 1 {
		t.Fatalf("got %q with %d files", d.Payload, len(d.Files))
	}
	if !nonblock() {
		t.Error("sending switched the caller's file to blocking mode")
	}
	// The manager's copy is independent of ours.
	d.Files[0].Close()
	if _, err := w.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	if _, err := r.Read(b[:]); err != nil {
		t.Fatalf("our copy broke: %v", err)
	}
}

func TestAddresses(t *testing.T) {
	for _, tt := range []struct {
		name string
		new  func(testing.TB) *sdnotifytest.Manager
	}{
		{"path", sdnotifytest.New},
		{"abstract", sdnotifytest.NewAbstract},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.new(t)
			if tt.name == "abstract" && !strings.HasPrefix(m.Addr(), "@") {
				t.Fatalf("abstract address %q", m.Addr())
			}
			m.Setenv(t)
			n, err := sdnotify.Open()
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer n.Close()
			if n.Addr() != m.Addr() {
				t.Errorf("Addr() = %q, want %q", n.Addr(), m.Addr())
			}
			if err := n.Ready(); err != nil {
				t.Fatalf("Ready: %v", err)
			}
			if d := receive(t, m); string(d.Payload) != "READY=1" {
				t.Errorf("payload = %q", d.Payload)
			}
			if os.Getenv("NOTIFY_SOCKET") != m.Addr() {
				t.Error("Open changed NOTIFY_SOCKET")
			}
		})
	}
}

func TestNoSocket(t *testing.T) {
	for _, tt := range []struct {
		name  string
		setup func(t *testing.T)
	}{
		{"unset", func(t *testing.T) { t.Setenv("NOTIFY_SOCKET", "x"); os.Unsetenv("NOTIFY_SOCKET") }},
		{"empty", func(t *testing.T) { t.Setenv("NOTIFY_SOCKET", "") }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.setup(t)
			n, err := sdnotify.Open()
			if n != nil || !errors.Is(err, sdnotify.ErrNoSocket) {
				t.Fatalf("Open() = %v, %v; want nil, ErrNoSocket", n, err)
			}
		})
	}

	var n *sdnotify.Notifier
	files := testFiles(t, 1)
	calls := map[string]func() error{
		"Ready":         n.Ready,
		"Reloading":     n.Reloading,
		"Stopping":      n.Stopping,
		"Watchdog":      n.Watchdog,
		"Status":        func() error { return n.Status("x") },
		"Errno":         func() error { return n.Errno(syscall.EIO) },
		"ExtendTimeout": func() error { return n.ExtendTimeout(time.Second) },
		"MainPID":       func() error { return n.MainPID(1) },
		"Notify":        func() error { return n.Notify("X_A=1") },
		"NotifyFiles":   func() error { return n.NotifyWithFiles(files, "X_A=1") },
		"StoreFiles":    func() error { return n.StoreFiles("a", files, nil) },
		"RemoveFiles":   func() error { return n.RemoveFiles("a") },
		"Barrier":       func() error { return n.Barrier(context.Background()) },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, sdnotify.ErrNoSocket) {
			t.Errorf("nil Notifier: %s() = %v, want ErrNoSocket", name, err)
		}
	}
	if err := n.Close(); err != nil {
		t.Errorf("nil Notifier: Close() = %v", err)
	}
	if n.Addr() != "" {
		t.Errorf("nil Notifier: Addr() = %q", n.Addr())
	}
	// Validation comes first, so bugs show without a manager too.
	if err := n.Notify("bad"); errors.Is(err, sdnotify.ErrNoSocket) || !errors.Is(err, syscall.EINVAL) {
		t.Errorf("nil Notifier: Notify(bad) = %v, want EINVAL", err)
	}
}

func TestOpenAddrErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr    string
		wantErr error
		wantMsg string
	}{
		{"vsock:2:1234", errors.ErrUnsupported, "vsock notify sockets are not supported"},
		{"vsock-stream:2:1234", errors.ErrUnsupported, "vsock notify sockets are not supported"},
		{"vsock-seqpacket:2:1", errors.ErrUnsupported, "vsock notify sockets are not supported"},
		{"run/notify", syscall.EINVAL, "want an absolute path"},
		{"", sdnotify.ErrNoSocket, "NOTIFY_SOCKET is not set"},
		{"/" + strings.Repeat("x", 200), syscall.EINVAL, "at most 107"},
	}
	for _, tt := range tests {
		n, err := sdnotify.OpenAddr(tt.addr)
		if n != nil || !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantMsg) {
			t.Errorf("OpenAddr(%q) = %v, %v; want error wrapping %v containing %q", tt.addr, n, err, tt.wantErr, tt.wantMsg)
		}
	}
}

func TestInvalidInputSendsNothing(t *testing.T) {
	t.Parallel()
	m, n := open(t)
	files := testFiles(t, 1)
	closed := testFiles(t, 1)
	closed[0].Close()
	tooMany := make([]*os.File, sdnotify.MaxFiles+1)
	for i := range tooMany {
		tooMany[i] = files[0]
	}
	store := func(name string) func() error {
		return func() error { return n.StoreFiles(name, files, nil) }
	}
	tests := []struct {
		name    string
		call    func() error
		wantErr error
		wantMsg string
	}{
		{"name with colon", store("a:b"), syscall.EINVAL, "':' at offset 1"},
		{"name with DEL", store("a\x7f"), syscall.EINVAL, "byte 0x7f at offset 1"},
		{"name with 0x80", store("\x80a"), syscall.EINVAL, "byte 0x80 at offset 0"},
		{"name with newline", store("a\nREADY=1"), syscall.EINVAL, "byte 0x0a at offset 1"},
		{"name with tab", store("a\tb"), syscall.EINVAL, "byte 0x09 at offset 1"},
		{"name with NUL", store("a\x00"), syscall.EINVAL, "byte 0x00 at offset 1"},
		{"name of 256 bytes", store(strings.Repeat("n", 256)), syscall.EINVAL, "256 bytes long"},
		{"empty name", store(""), syscall.EINVAL, "empty fd name"},
		{"remove bad name", func() error { return n.RemoveFiles("x:y") }, syscall.EINVAL, "':' at offset 1"},
		{"remove empty name", func() error { return n.RemoveFiles("") }, syscall.EINVAL, "empty fd name"},
		{"store no files", func() error { return n.StoreFiles("a", nil, nil) }, syscall.EINVAL, "no files"},
		{"254 files", func() error { return n.StoreFiles("a", tooMany, nil) }, syscall.E2BIG, "254 files"},
		{"254 files notify", func() error { return n.NotifyWithFiles(tooMany, "X_A=1") }, syscall.E2BIG, "SCM_MAX_FD"},
		{"nil file", func() error { return n.StoreFiles("a", []*os.File{files[0], nil}, nil) }, syscall.EINVAL, "file 1 is nil"},
		{"closed file", func() error { return n.StoreFiles("a", []*os.File{files[0], closed[0]}, nil) }, os.ErrClosed, "file 1"},
		{"4097-byte payload", func() error { return n.Notify("STATUS=" + strings.Repeat("x", 4090)) }, syscall.E2BIG, "over 4096 bytes"},
		{"4097 bytes over lines", func() error { return n.Notify("A="+strings.Repeat("x", 2046), "B="+strings.Repeat("y", 2046)) }, syscall.E2BIG, "over 4096"},
		{"newline in value", func() error { return n.Notify("STATUS=a\nREADY=1") }, syscall.EINVAL, "newline"},
		{"newline in status", func() error { return n.Status("a\nb") }, syscall.EINVAL, "newline"},
		{"NUL in value", func() error { return n.Notify("STATUS=a\x00") }, syscall.EINVAL, "NUL"},
		{"empty key", func() error { return n.Notify("=1") }, syscall.EINVAL, "empty key"},
		{"no equals", func() error { return n.Notify("READY") }, syscall.EINVAL, "missing '='"},
		{"lower-case key", func() error { return n.Notify("ready=1") }, syscall.EINVAL, "of the key"},
		{"no state", func() error { return n.Notify() }, syscall.EINVAL, "no state"},
		{"status not UTF-8", func() error { return n.Status("\xff") }, syscall.EINVAL, "UTF-8"},
		{"errno too big", func() error { return n.Errno(5000) }, syscall.EINVAL, "out of range"},
		{"zero timeout", func() error { return n.ExtendTimeout(0) }, syscall.EINVAL, "positive"},
		{"negative timeout", func() error { return n.ExtendTimeout(-time.Second) }, syscall.EINVAL, "positive"},
		{"main PID 0", func() error { return n.MainPID(0) }, syscall.EINVAL, "positive"},
	}
	for _, tt := range tests {
		err := tt.call()
		if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantMsg) {
			t.Errorf("%s: err = %v, want error wrapping %v containing %q", tt.name, err, tt.wantErr, tt.wantMsg)
		}
		m.ExpectNone(t)
	}
}

func TestBarrier(t *testing.T) {
	t.Parallel()
	m, n := open(t)
	got := make(chan *sdnotifytest.Datagram, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		d, err := m.Receive(ctx)
		if err != nil {
			t.Error(err)
			close(got)
			return
		}
		// Check before releasing the barrier.
		if len(d.Files) == 1 {
			if st := fstat(t, d.Files[0]); st.Mode&unix.S_IFMT != unix.S_IFIFO {
				t.Errorf("barrier fd has mode %o, want a FIFO", st.Mode)
			}
		}
		got <- &sdnotifytest.Datagram{Payload: d.Payload, Creds: d.Creds, OOB: d.OOB, Files: make([]*os.File, len(d.Files))}
		d.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Barrier(ctx); err != nil {
		t.Fatalf("Barrier: %v", err)
	}
	d := <-got
	if d == nil {
		t.FailNow()
	}
	if string(d.Payload) != "BARRIER=1" || len(d.Files) != 1 || d.Creds == nil || d.Creds.Pid != int32(os.Getpid()) {
		t.Errorf("barrier datagram: payload %q, %d files, creds %+v; want BARRIER=1, 1 file, our creds", d.Payload, len(d.Files), d.Creds)
	}
}

func TestBarrierServe(t *testing.T) {
	t.Parallel()
	m, n := open(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	var payloads []string
	go func() {
		done <- m.Serve(ctx, func(d *sdnotifytest.Datagram) { payloads = append(payloads, string(d.Payload)) })
	}()
	for range 3 {
		if err := n.Ready(); err != nil {
			t.Fatal(err)
		}
		bctx, bcancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := n.Barrier(bctx)
		bcancel()
		if err != nil {
			t.Fatalf("Barrier: %v", err)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	want := []string{"READY=1", "BARRIER=1", "READY=1", "BARRIER=1", "READY=1", "BARRIER=1"}
	if strings.Join(payloads, ",") != strings.Join(want, ",") {
		t.Errorf("manager saw %q, want %q", payloads, want)
	}
}

func TestBarrierContext(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		wantErr error
	}{
		{"deadline", context.DeadlineExceeded},
		{"cancel", context.Canceled},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, n := open(t)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			bctx, bcancel := context.WithCancel(ctx)
			if tt.wantErr == context.DeadlineExceeded {
				bctx, bcancel = context.WithTimeout(ctx, 100*time.Millisecond)
			}
			defer bcancel()
			held := make(chan *sdnotifytest.Datagram, 1)
			go func() {
				d, err := m.Receive(ctx)
				if err != nil {
					t.Error(err)
				}
				held <- d // keep the fd open: a manager that never answers
				if tt.wantErr == context.Canceled {
					time.Sleep(50 * time.Millisecond)
					bcancel()
				}
			}()
			start := time.Now()
			err := n.Barrier(bctx)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("Barrier = %v, want %v", err, tt.wantErr)
			}
			if time.Since(start) > 5*time.Second {
				t.Errorf("Barrier took %v", time.Since(start))
			}
			if d := <-held; d != nil {
				d.Close()
			}
		})
	}
	t.Run("already done", func(t *testing.T) {
		t.Parallel()
		m, n := open(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := n.Barrier(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("Barrier = %v, want context.Canceled", err)
		}
		m.ExpectNone(t)
	})
}

func TestSendErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	refused := filepath.Join(dir, "refused")
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: refused}); err != nil {
		t.Fatal(err)
	}
	unix.Close(fd) // the socket file stays, nothing listens
	for _, tt := range []struct {
		addr    string
		wantErr error
	}{
		{filepath.Join(dir, "missing"), syscall.ENOENT},
		{refused, syscall.ECONNREFUSED},
	} {
		n, err := sdnotify.OpenAddr(tt.addr)
		if err != nil {
			t.Fatalf("OpenAddr(%q): %v", tt.addr, err)
		}
		err = n.Ready()
		if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), "no service manager is listening") || !strings.Contains(err.Error(), tt.addr) {
			t.Errorf("Ready to %s = %v, want %v with a hint", tt.addr, err, tt.wantErr)
		}
		n.Close()
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	m, n := open(t)
	if err := n.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := n.Ready(); !errors.Is(err, syscall.EBADF) {
		t.Errorf("Ready after Close = %v, want EBADF", err)
	}
	if err := n.Barrier(context.Background()); !errors.Is(err, syscall.EBADF) {
		t.Errorf("Barrier after Close = %v, want EBADF", err)
	}
	var zero sdnotify.Notifier
	if err := zero.Ready(); !errors.Is(err, syscall.EBADF) {
		t.Errorf("zero Notifier: Ready = %v, want EBADF", err)
	}
	m.ExpectNone(t)
}

func TestConcurrent(t *testing.T) {
	t.Parallel()
	m, n := open(t)
	const workers, each = 8, 25
	ctx, cancel := context.WithCancel(context.Background())
	var received atomic.Int64
	served := make(chan error)
	go func() {
		served <- m.Serve(ctx, func(*sdnotifytest.Datagram) { received.Add(1) })
	}()
	var wg sync.WaitGroup
	files := testFiles(t, 2)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				var err error
				if i%2 == 0 {
					err = n.Status("worker " + strconv.Itoa(w))
				} else {
					err = n.StoreFiles("w", files, nil)
				}
				if err != nil {
					t.Errorf("worker %d: %v", w, err)
				}
			}
		})
	}
	wg.Wait()
	// Sends are queued when sendmsg returns; a barrier makes sure the
	// manager has read them all.
	bctx, bcancel := context.WithTimeout(ctx, 10*time.Second)
	defer bcancel()
	if err := n.Barrier(bctx); err != nil {
		t.Fatal(err)
	}
	if got := received.Load(); got != workers*each+1 {
		t.Errorf("manager received %d datagrams, want %d", got, workers*each+1)
	}

	// Close racing with sends: every send either works or reports EBADF.
	var wg2 sync.WaitGroup
	for range workers {
		wg2.Go(func() {
			for range each {
				if err := n.Watchdog(); err != nil && !errors.Is(err, syscall.EBADF) {
					t.Errorf("Watchdog during Close: %v", err)
				}
			}
		})
	}
	n.Close()
	wg2.Wait()
	cancel()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}

func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestNoFDLeak is not parallel so that other tests do not change the count.
func TestNoFDLeak(t *testing.T) {
	m := sdnotifytest.New(t)
	files := testFiles(t, 3)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error)
	go func() { served <- m.Serve(ctx, nil) }()
	round := func() {
		n, err := sdnotify.OpenAddr(m.Addr())
		if err != nil {
			t.Fatal(err)
		}
		if err := n.StoreFiles("x", files, nil); err != nil {
			t.Fatal(err)
		}
		if err := n.Reloading(); err != nil {
			t.Fatal(err)
		}
		if err := n.StoreFiles("bad:name", files, nil); err == nil {
			t.Fatal("bad name accepted")
		}
		bctx, bcancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := n.Barrier(bctx); err != nil {
			t.Fatal(err)
		}
		bcancel()
		n.Close()
	}
	round() // warm up lazily created runtime fds (epoll, ...)
	before := countFDs(t)
	for range 50 {
		round()
	}
	after := countFDs(t)
	cancel()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("open fds: %d before, %d after 50 rounds", before, after)
	}
}
