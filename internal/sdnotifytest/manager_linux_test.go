package sdnotifytest_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/sdnotifytest"
	"golang.org/x/sys/unix"
)

// send sends a raw datagram, without SCM_CREDENTIALS, to addr.
func send(t *testing.T, addr string, payload []byte, fds ...int) {
	t.Helper()
	s, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(s)
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	if err := unix.Sendmsg(s, payload, oob, &unix.SockaddrUnix{Name: addr}, 0); err != nil {
		t.Fatalf("sendmsg: %v", err)
	}
}

func TestReceive(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		new  func(testing.TB) *sdnotifytest.Manager
	}{
		{"path", sdnotifytest.New},
		{"abstract", sdnotifytest.NewAbstract},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := tt.new(t)
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			defer w.Close()
			send(t, m.Addr(), []byte("A=1\nB=2"), int(r.Fd()), int(w.Fd()))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			d, err := m.Receive(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if got := strings.Join(d.Lines(), ","); got != "A=1,B=2" {
				t.Errorf("lines %q", got)
			}
			// SO_PASSCRED: the kernel attaches our credentials.
			if d.Creds == nil || d.Creds.Pid != int32(os.Getpid()) {
				t.Errorf("creds %+v, want our PID", d.Creds)
			}
			if len(d.Files) != 2 || d.Trunc || d.CTrunc {
				t.Fatalf("%d files, trunc %v/%v", len(d.Files), d.Trunc, d.CTrunc)
			}
			for _, f := range d.Files {
				fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFD, 0)
				if err != nil || fl&unix.FD_CLOEXEC == 0 {
					t.Errorf("received fd not close-on-exec: %v %v", fl, err)
				}
			}
			m.ExpectNone(t)
		})
	}
}

func TestReceiveOversize(t *testing.T) {
	t.Parallel()
	m := sdnotifytest.New(t)
	send(t, m.Addr(), []byte(strings.Repeat("x", 4097)))
	send(t, m.Addr(), []byte(strings.Repeat("x", 5000)))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := m.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Payload) != 4097 || d.Trunc {
		t.Errorf("4097-byte payload: got %d bytes, Trunc %v", len(d.Payload), d.Trunc)
	}
	d, err = m.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Trunc {
		t.Errorf("5000-byte payload: Trunc not set")
	}
}

func TestReceiveContext(t *testing.T) {
	t.Parallel()
	m := sdnotifytest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := m.Receive(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Receive = %v, want DeadlineExceeded", err)
	}
	// The next Receive is not affected by the expired deadline.
	send(t, m.Addr(), []byte("READY=1"))
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	d, err := m.Receive(ctx2)
	if err != nil || string(d.Payload) != "READY=1" {
		t.Fatalf("Receive = %v, %v", d, err)
	}
}

func TestServeClosesFiles(t *testing.T) {
	t.Parallel()
	m := sdnotifytest.New(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- m.Serve(ctx, func(d *sdnotifytest.Datagram) {
			if string(d.Payload) != "BARRIER=1" {
				t.Errorf("payload %q", d.Payload)
			}
		})
	}()
	send(t, m.Addr(), []byte("BARRIER=1"), int(w.Fd()))
	w.Close()
	// Serve closes the manager's copy: the read end sees EOF.
	r.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b [1]byte
	if n, err := r.Read(b[:]); n != 0 || err == nil || !strings.Contains(err.Error(), "EOF") {
		t.Errorf("Read = %d, %v; want EOF", n, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve = %v", err)
	}
}
