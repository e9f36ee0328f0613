package notify_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/liveupdate/luo/internal/notify"
)

// Environment of the helper processes that TestMain runs instead of the
// tests.
const (
	helperEnv = "NOTIFY_TEST_HELPER"
	pathEnv   = "NOTIFY_TEST_PATH"
)

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "send":
		helperSend()
	case "receive":
		helperReceive()
	case "adopt":
		helperAdopt()
	default:
		fmt.Fprintln(os.Stderr, "unknown helper", os.Getenv(helperEnv))
		os.Exit(2)
	}
	os.Exit(0)
}

// helperResult is what helper processes report on stdout, as JSON.
type helperResult struct {
	Err    string
	Reason string // of a DropError
	PID    int
	FDs    int
	Status string
	Leaked int // fds open after Receive minus before
}

func helperFail(err error) {
	fmt.Fprintln(os.Stderr, "helper:", err)
	os.Exit(1)
}

// helperSend sends one notification without fds, then waits for stdin to
// close, so that the parent can inspect the pidfd of a live process.
func helperSend() {
	if err := sendTo(os.Getenv(pathEnv), []byte("READY=1\nSTATUS=helper"), nil); err != nil {
		helperFail(err)
	}
	io.Copy(io.Discard, os.Stdin)
}

// helperReceive listens (in a new PID namespace, where the parent is
// invisible), receives one datagram and reports what happened to it.
func helperReceive() {
	s, err := notify.Listen(os.Getenv(pathEnv))
	if err != nil {
		helperFail(err)
	}
	defer s.Close()
	receiveAndReport(s)
}

// helperAdopt plays a re-executed luod: it adopts the socket passed as fd 3
// and reports the next message.
func helperAdopt() {
	f := os.NewFile(3, "notify-socket")
	s, err := notify.FromFile(f)
	if err != nil {
		helperFail(err)
	}
	f.Close()
	defer s.Close()
	receiveAndReport(s)
}

func receiveAndReport(s *notify.Socket) {
	before, err := countFDs()
	if err != nil {
		helperFail(err)
	}
	fmt.Println("ready")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var res helperResult
	m, err := s.Receive(ctx)
	var de *notify.DropError
	switch {
	case errors.As(err, &de):
		res.Reason, res.PID, res.FDs = de.Reason, de.PID, de.FDs
	case err != nil:
		res.Err = err.Error()
	default:
		res.PID, res.FDs = m.PID, len(m.Files)
		if m.Status != nil {
			res.Status = *m.Status
		}
		m.Close()
	}
	after, err := countFDs()
	if err != nil {
		helperFail(err)
	}
	res.Leaked = after - before
	json.NewEncoder(os.Stdout).Encode(res)
}

// helper is a running helper process.
type helper struct {
	cmd   *exec.Cmd
	out   *bufio.Reader
	stdin io.WriteCloser
}

// startHelper runs the test binary as the named helper and waits for its
// "ready" line when it prints one.
func startHelper(t *testing.T, name, path string, waitReady bool, setup func(*exec.Cmd)) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"="+name, pathEnv+"="+path)
	cmd.Stderr = os.Stderr
	if setup != nil {
		setup(cmd)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		if errors.Is(err, unix.EPERM) {
			t.Skipf("cannot start helper: %v", err)
		}
		t.Fatal(err)
	}
	h := &helper{cmd: cmd, out: bufio.NewReader(stdout), stdin: stdin}
	t.Cleanup(func() {
		h.stdin.Close()
		h.cmd.Process.Kill()
		h.cmd.Wait()
	})
	if waitReady {
		line, err := h.out.ReadString('\n')
		if line != "ready\n" {
			t.Fatalf("helper %s: %q, %v", name, line, err)
		}
	}
	return h
}

// result reads the helper's report and waits for it to exit.
func (h *helper) result(t *testing.T) helperResult {
	t.Helper()
	var res helperResult
	if err := json.NewDecoder(h.out).Decode(&res); err != nil {
		t.Fatalf("reading helper result: %v", err)
	}
	h.stdin.Close()
	if err := h.cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	return res
}

// socketPath returns a path for a socket in a fresh directory; t.TempDir
// names can exceed the 108 bytes of sun_path.
func socketPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "notify")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "notify")
}

func listen(t *testing.T) *notify.Socket {
	t.Helper()
	s, err := notify.Listen(socketPath(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// sender is a client socket that sends datagrams to one address; sendmsg
// blocks while the receiver's queue is full.
type sender struct {
	fd int
	to unix.Sockaddr
}

func newSender(t testing.TB, path string) *sender {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return &sender{fd: fd, to: &unix.SockaddrUnix{Name: path}}
}

func (s *sender) send(payload []byte, oob []byte) error {
	return unix.Sendmsg(s.fd, payload, oob, s.to, 0)
}

func sendTo(path string, payload []byte, fds []int) error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	return unix.Sendmsg(fd, payload, oob, &unix.SockaddrUnix{Name: path}, 0)
}

func receive(t testing.TB, s *notify.Socket) (*notify.Message, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return s.Receive(ctx)
}

func countFDs() (int, error) {
	ents, err := os.ReadDir("/proc/self/fd")
	return len(ents), err
}

func mustCountFDs(t testing.TB) int {
	t.Helper()
	n, err := countFDs()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func memfd(t testing.TB, name string) int {
	t.Helper()
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func inode(t testing.TB, fd int) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// fileFD runs fn with f's descriptor without changing its blocking mode.
func fileFD(t testing.TB, f *os.File, fn func(fd int)) {
	t.Helper()
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Control(func(fd uintptr) { fn(int(fd)) }); err != nil {
		t.Fatal(err)
	}
}

func TestListen(t *testing.T) {
	t.Parallel()
	path := socketPath(t)
	s, err := notify.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.Path() != path {
		t.Errorf("Path() = %q, want %q", s.Path(), path)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o777 {
		t.Errorf("socket file mode = %v, want a socket with mode 0777", fi.Mode())
	}

	f, err := s.File()
	if err != nil {
		t.Fatal(err)
	}
	fileFD(t, f, func(fd int) {
		if v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED); err != nil || v != 1 {
			t.Errorf("SO_PASSCRED = %d, %v; want 1", v, err)
		}
		v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSPIDFD)
		switch {
		case errors.Is(err, unix.ENOPROTOOPT):
			if s.PIDFDEnabled() {
				t.Error("PIDFDEnabled() but the kernel has no SO_PASSPIDFD")
			}
		case err != nil:
			t.Errorf("getsockopt SO_PASSPIDFD: %v", err)
		case (v == 1) != s.PIDFDEnabled():
			t.Errorf("SO_PASSPIDFD = %d, PIDFDEnabled() = %v", v, s.PIDFDEnabled())
		}
		if v, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil || v&unix.FD_CLOEXEC == 0 {
			t.Errorf("File() descriptor flags = %#x, %v; want FD_CLOEXEC", v, err)
		}
		if v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF); err == nil {
			t.Logf("SO_RCVBUF = %d", v)
		}
	})
	f.Close()

	// Close leaves the socket file, and the next Listen replaces it.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); err != nil {
		t.Errorf("socket file gone after Close: %v", err)
	}
	s, err = notify.Listen(path)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	if err := sendTo(path, []byte("READY=1"), nil); err != nil {
		t.Fatal(err)
	}
	m, err := receive(t, s)
	if err != nil || !m.Ready {
		t.Fatalf("Receive() = %v, %v", m, err)
	}
	m.Close()
	s.Close()
}

func TestListenErrors(t *testing.T) {
	t.Parallel()
	dir := filepath.Dir(socketPath(t))

	regular := filepath.Join(dir, "regular")
	if err := os.WriteFile(regular, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := notify.Listen(regular); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Listen(regular file) = %v, want fs.ErrExist", err)
	}
	if _, err := os.Stat(regular); err != nil {
		t.Errorf("Listen removed a regular file: %v", err)
	}
	if _, err := notify.Listen(filepath.Join(dir, "missing", "notify")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Listen(missing dir) = %v, want fs.ErrNotExist", err)
	}
	if _, err := notify.Listen(""); err == nil {
		t.Error(`Listen("") succeeded`)
	}
	if _, err := notify.Listen("/" + strings.Repeat("x", 200)); err == nil {
		t.Error("Listen(path too long) succeeded")
	}
}

func TestListenAbstract(t *testing.T) {
	t.Parallel()
	path := fmt.Sprintf("@luo-notify-test-%d", os.Getpid())
	s, err := notify.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Path() != path {
		t.Errorf("Path() = %q, want %q", s.Path(), path)
	}
	if err := sendTo(path, []byte("STATUS=abstract"), nil); err != nil {
		t.Fatal(err)
	}
	m, err := receive(t, s)
	if err != nil || m.Status == nil || *m.Status != "abstract" {
		t.Fatalf("Receive() = %v, %v", m, err)
	}
	m.Close()
}

func TestReceive(t *testing.T) {
	t.Parallel()
	s := listen(t)
	if err := sendTo(s.Path(), []byte("READY=1\nSTATUS=Serving\nX_A=b"), nil); err != nil {
		t.Fatal(err)
	}
	m, err := receive(t, s)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.PID != os.Getpid() || m.UID != uint32(os.Getuid()) || m.GID != uint32(os.Getgid()) {
		t.Errorf("credentials = %d/%d/%d, want %d/%d/%d", m.PID, m.UID, m.GID, os.Getpid(), os.Getuid(), os.Getgid())
	}
	if !m.Ready || m.Status == nil || *m.Status != "Serving" || len(m.Fields) != 3 || len(m.Files) != 0 {
		t.Errorf("Receive() = %s", m)
	}
	if s.PIDFDEnabled() {
		if m.PIDFD == nil {
			t.Fatal("PIDFDEnabled() but the message has no PIDFD")
		}
		if pid := pidfdPID(t, m.PIDFD); pid != os.Getpid() {
			t.Errorf("PIDFD refers to PID %d, want %d", pid, os.Getpid())
		}
	} else if m.PIDFD != nil {
		t.Error("PIDFD without SO_PASSPIDFD")
	}
}

// pidfdPID returns the "Pid:" of a pidfd from /proc/self/fdinfo.
func pidfdPID(t *testing.T, f *os.File) int {
	t.Helper()
	var info []byte
	fileFD(t, f, func(fd int) {
		var err error
		info, err = os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", fd))
		if err != nil {
			t.Fatal(err)
		}
	})
	for line := range strings.SplitSeq(string(info), "\n") {
		if v, ok := strings.CutPrefix(line, "Pid:"); ok {
			pid, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return pid
		}
	}
	t.Fatalf("no Pid: in fdinfo:\n%s", info)
	return 0
}

func TestReceivePIDFD(t *testing.T) {
	t.Parallel()
	s := listen(t)
	if !s.PIDFDEnabled() {
		t.Skip("kernel has no SO_PASSPIDFD (Linux 6.5)")
	}
	h := startHelper(t, "send", s.Path(), false, nil)
	m, err := receive(t, s)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	child := h.cmd.Process.Pid
	if m.PID != child {
		t.Errorf("PID = %d, want the helper's %d", m.PID, child)
	}
	if m.PIDFD == nil {
		t.Fatal("no PIDFD")
	}
	// The helper waits on stdin, so it is alive and its PID unreused.
	if pid := pidfdPID(t, m.PIDFD); pid != child {
		t.Errorf("PIDFD refers to PID %d, want the helper's %d", pid, child)
	}
	fileFD(t, m.PIDFD, func(fd int) {
		if err := unix.PidfdSendSignal(fd, 0, nil, 0); err != nil {
			t.Errorf("pidfd_send_signal(0) to the helper: %v", err)
		}
	})
	h.stdin.Close()
	if err := h.cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	// After the helper is gone, the pidfd says so.
	fileFD(t, m.PIDFD, func(fd int) {
		if err := unix.PidfdSendSignal(fd, 0, nil, 0); !errors.Is(err, unix.ESRCH) {
			t.Errorf("pidfd_send_signal(0) after exit = %v, want ESRCH", err)
		}
	})
}

func TestReceiveFDs(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 2, 253} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			t.Parallel()
			s := listen(t)
			fd := memfd(t, "payload")
			fds := make([]int, n)
			for i := range fds {
				fds[i] = fd
			}
			if err := sendTo(s.Path(), []byte("FDSTORE=1\nFDNAME=x"), fds); err != nil {
				t.Fatal(err)
			}
			m, err := receive(t, s)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if !m.FDStore || len(m.Files) != n {
				t.Fatalf("Receive() = %s, want %d files", m, n)
			}
			want := inode(t, fd)
			for i, f := range m.Files {
				fileFD(t, f, func(rfd int) {
					if got := inode(t, rfd); got != want {
						t.Errorf("file %d: inode %d, want %d", i, got, want)
					}
					if v, err := unix.FcntlInt(uintptr(rfd), unix.F_GETFD, 0); err != nil || v&unix.FD_CLOEXEC == 0 {
						t.Errorf("file %d: flags %#x, %v; want FD_CLOEXEC", i, v, err)
					}
				})
			}
		})
	}
}

func TestReceiveMultipleRights(t *testing.T) {
	t.Parallel()
	s := listen(t)
	var fds []int
	for i := range 5 {
		fds = append(fds, memfd(t, fmt.Sprint("m", i)))
	}
	// Two SCM_RIGHTS messages and explicit credentials in one sendmsg; the
	// kernel hands them over as one SCM_RIGHTS, in order.
	cred := unix.Ucred{Pid: int32(os.Getpid()), Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid())}
	oob := unix.UnixRights(fds[:2]...)
	oob = append(oob, unix.UnixCredentials(&cred)...)
	oob = append(oob, unix.UnixRights(fds[2:]...)...)
	if err := newSender(t, s.Path()).send([]byte("FDSTORE=1"), oob); err != nil {
		t.Fatal(err)
	}
	m, err := receive(t, s)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if len(m.Files) != len(fds) || m.PID != os.Getpid() {
		t.Fatalf("Receive() = %s, want %d files from PID %d", m, len(fds), os.Getpid())
	}
	for i, f := range m.Files {
		fileFD(t, f, func(rfd int) {
			if got, want := inode(t, rfd), inode(t, fds[i]); got != want {
				t.Errorf("file %d: inode %d, want %d", i, got, want)
			}
		})
	}
}

func TestParseControl(t *testing.T) {
	t.Parallel()
	// The kernel merges SCM_RIGHTS messages, so a receiver never sees two;
	// parseControl copes anyway, and finds every fd of a cut-off message.
	cred := unix.Ucred{Pid: 7, Uid: 8, Gid: 9}
	oob := unix.UnixRights(3, 4)
	oob = append(oob, unix.UnixCredentials(&cred)...)
	oob = append(oob, unix.UnixRights(5, 6, 7)...)
	c := notify.ParseControl(oob)
	if fmt.Sprint(c.FDs) != "[3 4 5 6 7]" || !c.HasCred || c.PID != 7 || c.PIDFD != -1 {
		t.Errorf("ParseControl = %+v", c)
	}
	// A length running past the buffer is cut at the end.
	last := unix.UnixRights(10, 11, 12)
	cut := append(append([]byte{}, oob...), last[:len(last)-8]...)
	if c := notify.ParseControl(cut); fmt.Sprint(c.FDs) != "[3 4 5 6 7 10 11]" {
		t.Errorf("ParseControl(cut) = %+v", c)
	}
	// Garbage after a header too short to be one stops the walk.
	bad := append(append([]byte{}, oob...), make([]byte, unix.SizeofCmsghdr)...)
	if c := notify.ParseControl(bad); fmt.Sprint(c.FDs) != "[3 4 5 6 7]" {
		t.Errorf("ParseControl(bad) = %+v", c)
	}
	if c := notify.ParseControl(nil); len(c.FDs) != 0 || c.HasCred || c.PIDFD != -1 {
		t.Errorf("ParseControl(nil) = %+v", c)
	}
}

// dropTests are datagrams that Receive must drop.
var dropTests = []struct {
	name    string
	payload []byte
	fds     int
	control int // size of the control buffer; 0 for Listen's
	reason  string
	wantFDs int // that arrive and are closed; -1 for some but not all
}{
	{name: "truncated payload", payload: bytes.Repeat([]byte("x"), notify.BufferMax+1), fds: 2,
		reason: "truncated payload", wantFDs: 2},
	{name: "huge payload", payload: append([]byte("STATUS="), bytes.Repeat([]byte("x"), 60000)...), fds: 253,
		reason: "truncated payload", wantFDs: 253},
	{name: "embedded NUL", payload: []byte("READY=1\x00STATUS=x"), fds: 3,
		reason: "embedded NUL", wantFDs: 3},
	{name: "trailing backslash", payload: []byte(`STATUS=x\`), fds: 1,
		reason: "lone backslash", wantFDs: 1},
	{name: "truncated control", payload: []byte("FDSTORE=1"), fds: 20, control: notify.ControlSize(2),
		reason: "truncated control data", wantFDs: -1},
	{name: "truncated control without room for fds", payload: []byte("FDSTORE=1"), fds: 1,
		control: unix.CmsgSpace(unix.SizeofUcred), reason: "truncated control data", wantFDs: 0},
}

func TestReceiveDrops(t *testing.T) {
	// Not parallel: it counts this process's fds.
	for _, tt := range dropTests {
		t.Run(tt.name, func(t *testing.T) {
			path := socketPath(t)
			var s *notify.Socket
			var err error
			if tt.control == 0 {
				s, err = notify.Listen(path)
			} else {
				s, err = notify.ListenControlSize(path, tt.control)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			defer w.Close()
			fds := make([]int, tt.fds)
			for i := range fds {
				fds[i] = int(r.Fd())
			}
			before := mustCountFDs(t)
			if err := sendTo(path, tt.payload, fds); err != nil {
				t.Fatal(err)
			}
			m, err := receive(t, s)
			var de *notify.DropError
			if !errors.As(err, &de) {
				if m != nil {
					m.Close()
				}
				t.Fatalf("Receive() = %v, %v; want a *DropError", m, err)
			}
			okFDs := de.FDs == tt.wantFDs || (tt.wantFDs < 0 && de.FDs > 0 && de.FDs < tt.fds)
			if !strings.Contains(de.Reason, tt.reason) || de.PID != os.Getpid() || !okFDs {
				t.Errorf("DropError = %+v, want reason %q, PID %d, %d fds", de, tt.reason, os.Getpid(), tt.wantFDs)
			}
			t.Logf("%v", de)
			if after := mustCountFDs(t); after != before {
				t.Errorf("%d fds open after the drop, %d before", after, before)
			}
			if tt.control != 0 {
				return // too small for the pidfd of any datagram
			}
			// The socket still works.
			if err := sendTo(path, []byte("READY=1"), nil); err != nil {
				t.Fatal(err)
			}
			m, err = receive(t, s)
			if err != nil || !m.Ready {
				t.Fatalf("Receive() after a drop = %v, %v", m, err)
			}
			m.Close()
		})
	}
}

func TestReceiveLimits(t *testing.T) {
	t.Parallel()
	s := listen(t)
	payload := append([]byte("STATUS="), bytes.Repeat([]byte("y"), notify.BufferMax-len("STATUS="))...)
	if err := sendTo(s.Path(), payload, nil); err != nil {
		t.Fatal(err)
	}
	m, err := receive(t, s)
	if err != nil {
		t.Fatalf("Receive(%d bytes) = %v", len(payload), err)
	}
	m.Close()
	if err := sendTo(s.Path(), nil, nil); err != nil {
		t.Fatal(err)
	}
	m, err = receive(t, s)
	if err != nil || len(m.Fields) != 0 {
		t.Fatalf("Receive(empty) = %v, %v", m, err)
	}
	m.Close()
}

// TestReceiveNoCredentials receives in a new PID namespace, in which the
// sender (this process) has no PID: the kernel still attaches
// SCM_CREDENTIALS because of SO_PASSCRED, but with PID 0. That is the only
// way to get a datagram "lacking valid credential information" with
// SO_PASSCRED on; sendmsg refuses explicit credentials with PID 0.
func TestReceiveNoCredentials(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root for CLONE_NEWPID")
	}
	path := socketPath(t)
	h := startHelper(t, "receive", path, true, func(cmd *exec.Cmd) {
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
	})
	fd := memfd(t, "x")
	if err := sendTo(path, []byte("READY=1"), []int{fd, fd}); err != nil {
		t.Fatal(err)
	}
	res := h.result(t)
	if !strings.Contains(res.Reason, "lacking valid credential") || res.PID != 0 || res.FDs != 2 || res.Leaked != 0 {
		t.Errorf("helper in a new PID namespace reported %+v; want a drop for lacking credentials, 2 fds closed, none leaked", res)
	}

	bad := unix.UnixCredentials(&unix.Ucred{Pid: 0, Uid: 0, Gid: 0})
	if err := newSender(t, path).send([]byte("READY=1"), bad); err == nil {
		t.Error("sendmsg with SCM_CREDENTIALS PID 0 succeeded")
	}
}

func TestReceiveContext(t *testing.T) {
	t.Parallel()
	s := listen(t)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Receive(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Receive(canceled) = %v, want context.Canceled", err)
	}

	ctx, cancel = context.WithCancel(context.Background())
	go func() {
		time.Sleep(20 * time.Millisecond)
		cancel()
	}()
	if _, err := s.Receive(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Receive() after cancel = %v, want context.Canceled", err)
	}

	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := s.Receive(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Receive() past deadline = %v, want context.DeadlineExceeded", err)
	}

	// The deadline used to wake Receive does not stick.
	if err := sendTo(s.Path(), []byte("READY=1"), nil); err != nil {
		t.Fatal(err)
	}
	m, err := s.Receive(context.Background())
	if err != nil || !m.Ready {
		t.Fatalf("Receive() after cancellations = %v, %v", m, err)
	}
	m.Close()

	// Many short-lived contexts, racing with delivery.
	snd := newSender(t, s.Path())
	var got int
	for i := range 200 {
		if i%2 == 0 {
			if err := snd.send([]byte("READY=1"), nil); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%3)*time.Millisecond)
		m, err := s.Receive(ctx)
		cancel()
		switch {
		case err == nil:
			got++
			m.Close()
		case !errors.Is(err, context.DeadlineExceeded):
			t.Fatalf("Receive() = %v", err)
		}
	}
	for got < 100 {
		m, err := receive(t, s)
		if err != nil {
			t.Fatal(err)
		}
		m.Close()
		got++
	}
}

func TestCloseUnblocksReceive(t *testing.T) {
	t.Parallel()
	s := listen(t)
	errc := make(chan error, 2)
	for range 2 { // one in recvmsg, one waiting for its turn
		go func() {
			_, err := s.Receive(context.Background())
			errc <- err
		}()
	}
	time.Sleep(20 * time.Millisecond) // let them block; not needed for correctness
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case err := <-errc:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("Receive() after Close = %v, want net.ErrClosed", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Receive did not return after Close")
		}
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close() = %v", err)
	}
	if _, err := s.Receive(context.Background()); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Receive() on a closed socket = %v, want net.ErrClosed", err)
	}
	if _, err := s.File(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("File() on a closed socket = %v, want net.ErrClosed", err)
	}
}

func TestConcurrentReceive(t *testing.T) {
	t.Parallel()
	s := listen(t)
	const n = 300
	var mu sync.Mutex
	seen := make(map[string]bool)
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for {
				m, err := s.Receive(context.Background())
				if err != nil {
					if !errors.Is(err, net.ErrClosed) {
						t.Errorf("Receive() = %v", err)
					}
					return
				}
				mu.Lock()
				seen[*m.Status] = true
				done := len(seen) == n
				mu.Unlock()
				m.Close()
				if done {
					s.Close()
				}
			}
		})
	}
	snd := newSender(t, s.Path())
	fd := memfd(t, "x")
	for i := range n {
		if err := snd.send(fmt.Appendf(nil, "STATUS=%d", i), unix.UnixRights(fd)); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if len(seen) != n {
		t.Errorf("received %d distinct messages, want %d", len(seen), n)
	}
}

func TestFromFile(t *testing.T) {
	t.Parallel()
	s := listen(t)
	f, err := s.File()
	if err != nil {
		t.Fatal(err)
	}
	s2, err := notify.FromFile(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.Path() != s.Path() || s2.PIDFDEnabled() != s.PIDFDEnabled() {
		t.Errorf("FromFile: Path() = %q, PIDFDEnabled() = %v; want %q, %v", s2.Path(), s2.PIDFDEnabled(), s.Path(), s.PIDFDEnabled())
	}
	s.Close()
	fd := memfd(t, "x")
	if err := sendTo(s2.Path(), []byte("FDSTORE=1"), []int{fd}); err != nil {
		t.Fatal(err)
	}
	m, err := receive(t, s2)
	if err != nil || len(m.Files) != 1 {
		t.Fatalf("Receive() on the adopted socket = %v, %v", m, err)
	}
	m.Close()
}

func TestFromFileErrors(t *testing.T) {
	t.Parallel()
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	if _, err := notify.FromFile(null); !errors.Is(err, unix.ENOTSOCK) {
		t.Errorf("FromFile(/dev/null) = %v, want ENOTSOCK", err)
	}

	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	stream := os.NewFile(uintptr(fds[0]), "stream")
	defer stream.Close()
	unix.Close(fds[1])
	if _, err := notify.FromFile(stream); !errors.Is(err, unix.EPROTOTYPE) {
		t.Errorf("FromFile(stream socket) = %v, want EPROTOTYPE", err)
	}

	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	unbound := os.NewFile(uintptr(fd), "unbound")
	defer unbound.Close()
	if _, err := notify.FromFile(unbound); err == nil || !strings.Contains(err.Error(), "not bound") {
		t.Errorf("FromFile(unbound socket) = %v, want a not-bound error", err)
	}
}

// TestReexec hands the socket to another process as luod does when it
// re-executes itself, and closes its own copy.
func TestReexec(t *testing.T) {
	t.Parallel()
	s := listen(t)
	f, err := s.File()
	if err != nil {
		t.Fatal(err)
	}
	h := startHelper(t, "adopt", s.Path(), true, func(cmd *exec.Cmd) {
		cmd.ExtraFiles = []*os.File{f}
	})
	f.Close()
	s.Close()
	if err := sendTo(s.Path(), []byte("STATUS=after re-exec"), nil); err != nil {
		t.Fatal(err)
	}
	res := h.result(t)
	if res.Err != "" || res.Status != "after re-exec" || res.PID != os.Getpid() || res.Leaked != 0 {
		t.Errorf("adopting helper reported %+v", res)
	}
}

// TestFDAccounting sends many bad datagrams, each with fds, and checks that
// every fd is closed again.
func TestFDAccounting(t *testing.T) {
	// Not parallel: it counts this process's fds.
	n := 100_000
	if testing.Short() {
		n = 10_000
	}
	// Room for the credentials, the pidfd and 2 fds (or 8 fds and no
	// pidfd): 12 fds truncate the control data.
	s, err := notify.ListenControlSize(socketPath(t), notify.ControlSize(2))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	snd := newSender(t, s.Path())
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	pipe := make([]int, 12)
	for i := range pipe {
		pipe[i] = int(r.Fd())
		if i%2 == 1 {
			pipe[i] = int(w.Fd())
		}
	}
	long := bytes.Repeat([]byte("x"), notify.BufferMax+100)
	nul := []byte("FDSTORE=1\x00FDNAME=x")
	// kind says what datagram i is: its payload, the fds it carries, and the
	// reason for dropping it.
	kind := func(i int) (payload []byte, fds int, reason string) {
		switch i % 3 {
		case 0:
			return long, 1 + i%2, "truncated payload"
		case 1:
			return nul, 1 + i%2, "embedded NUL"
		default:
			return []byte("FDSTORE=1"), 12, "truncated control"
		}
	}

	before := mustCountFDs(t)
	start := time.Now()
	senderr := make(chan error, 1)
	go func() {
		for i := range n {
			payload, fds, _ := kind(i)
			if err := snd.send(payload, unix.UnixRights(pipe[:fds]...)); err != nil {
				senderr <- fmt.Errorf("datagram %d: %w", i, err)
				return
			}
		}
		senderr <- nil
	}()
	var closed int
	for i := range n {
		m, err := receive(t, s)
		var de *notify.DropError
		if !errors.As(err, &de) {
			if m != nil {
				m.Close()
			}
			t.Fatalf("datagram %d: Receive() = %v, %v; want a *DropError", i, m, err)
		}
		_, fds, reason := kind(i)
		if !strings.Contains(de.Reason, reason) || de.FDs < 1 || de.FDs > fds || (fds < 3 && de.FDs != fds) {
			t.Fatalf("datagram %d: %v, want %q with fds closed", i, de, reason)
		}
		closed += de.FDs
	}
	if err := <-senderr; err != nil {
		t.Fatal(err)
	}
	after := mustCountFDs(t)
	t.Logf("%d datagrams dropped in %v, %d SCM_RIGHTS fds closed (and the pidfds: %v); open fds before %d, after %d",
		n, time.Since(start).Round(time.Millisecond), closed, s.PIDFDEnabled(), before, after)
	if after != before {
		t.Errorf("%d fds open after %d dropped datagrams, %d before", after, n, before)
	}
}

func BenchmarkReceiveOneFD(b *testing.B) {
	path := filepath.Join(b.TempDir(), "notify")
	s, err := notify.Listen(path)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	snd := newSender(b, path)
	fd := memfd(b, "bench")
	oob := unix.UnixRights(fd)
	payload := []byte("FDSTORE=1\nFDNAME=bench")
	b.ReportAllocs()
	b.ResetTimer()
	go func() {
		for range b.N {
			if err := snd.send(payload, oob); err != nil {
				b.Error(err)
				s.Close()
				return
			}
		}
	}()
	ctx := context.Background()
	for range b.N {
		m, err := s.Receive(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if len(m.Files) != 1 {
			b.Fatalf("%d files", len(m.Files))
		}
		m.Close()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// TestWaitReadableTryReceive: WaitReadable tells a datagram is queued
// without taking it (nor its fds), an empty datagram included; TryReceive
// takes it, or returns nothing at once when the queue is empty.
func TestWaitReadableTryReceive(t *testing.T) {
	t.Parallel()
	s := listen(t)
	if m, err := s.TryReceive(); m != nil || err != nil {
		t.Fatalf("TryReceive on an empty socket = %v, %v", m, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	err := s.WaitReadable(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitReadable on an empty socket = %v, want the deadline", err)
	}
	before := mustCountFDs(t)
	mfd := memfd(t, "w")
	for _, tc := range []struct {
		name    string
		payload string
		fds     []int
	}{
		{"empty datagram", "", nil},
		{"with an fd", "FDSTORE=1\nFDNAME=w", []int{mfd}},
		{"plain", "READY=1", nil},
	} {
		if err := sendTo(s.Path(), []byte(tc.payload), tc.fds); err != nil {
			t.Fatal(err)
		}
		for range 2 { // waiting does not consume it
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := s.WaitReadable(ctx)
			cancel()
			if err != nil {
				t.Fatalf("%s: WaitReadable = %v", tc.name, err)
			}
		}
		if n := mustCountFDs(t); n != before+1 {
			t.Errorf("%s: %d fds open while waiting, want %d: WaitReadable took the fds", tc.name, n, before+1)
		}
		m, err := s.TryReceive()
		if err != nil || m == nil {
			t.Fatalf("%s: TryReceive = %v, %v", tc.name, m, err)
		}
		if len(m.Files) != len(tc.fds) {
			t.Errorf("%s: %d files, want %d", tc.name, len(m.Files), len(tc.fds))
		}
		m.Close()
		if m, err := s.TryReceive(); m != nil || err != nil {
			t.Fatalf("%s: a second TryReceive = %v, %v", tc.name, m, err)
		}
	}
	s.Close()
	if err := s.WaitReadable(context.Background()); !errors.Is(err, net.ErrClosed) {
		t.Errorf("WaitReadable after Close = %v", err)
	}
	if _, err := s.TryReceive(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("TryReceive after Close = %v", err)
	}
}
