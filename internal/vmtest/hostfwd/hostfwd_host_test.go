//go:build !vmguest

package hostfwd

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/vm"
	"github.com/liveupdate/luo/internal/vmtest"
)

// guestPort is the port the guest connects to on vm.HostIP.
const guestPort = 2379

func TestVMHostForward(t *testing.T) {
	kernels := []string{vmtest.Kernel(t, "7.2"), vmtest.Kernel(t, "7.3")}
	srv := startServer(t)
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	p, err := json.Marshal(ports{Guest: guestPort, TCP: srv.port(), UDP: udp.LocalAddr().(*net.UDPAddr).Port})
	if err != nil {
		t.Fatal(err)
	}

	res := vmtest.Run(t, vm.Config{
		Kernels:     kernels,
		HostForward: []vm.Forward{{GuestPort: guestPort, Host: srv.ln.Addr().String()}},
		Files:       map[string][]byte{portsFile: p},
		Timeout:     3 * time.Minute,
	})

	// What the server saw: each connection the guest made through the
	// forward in each stage, whole, and nothing else (the guest writes
	// "leak" on any other connection that gets through).
	got := srv.sessions()
	want := []string{"a1 a2 bye(a3)", "a1 a2 bye(a3)", "b1 bye(b2)", "b1 bye(b2)", "c1 bye()", "c1 bye()"}
	if !slices.Equal(got, want) {
		t.Errorf("server sessions = %q, want %q", got, want)
	}
	udp.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, from, err := udp.ReadFrom(make([]byte, 512)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the host's UDP port got %d bytes from %v (%v): the guest reached it", n, from, err)
	}
	if len(res.Stages) == 2 {
		s1, s2 := res.Stages[0], res.Stages[1]
		t.Logf("QEMU start to stage 1 tests: %v, stage 1 to stage 2 tests: %v, whole run: %v", s1.Started.Sub(res.Start).Round(time.Millisecond),
			s2.Started.Sub(s1.Started).Round(time.Millisecond), res.End.Sub(res.Start).Round(time.Millisecond))
	}
}

// A server answers each line of a connection with "echo: LINE" and, at
// the connection's EOF, with "bye after REST" (REST is what came after the
// last newline), then closes it. It records each connection's session as
// its lines, then bye(REST), in the order the connections ended.
type server struct {
	ln net.Listener
	mu sync.Mutex
	s  []string
	wg sync.WaitGroup
}

func startServer(t *testing.T) *server {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{ln: ln}
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Go(func() { s.serve(c) })
		}
	})
	return s
}

func (s *server) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	var session []string
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err == io.EOF {
			io.WriteString(c, "bye after "+line+"\n")
			session = append(session, "bye("+line+")")
			break
		}
		if err != nil {
			session = append(session, "error: "+err.Error())
			break
		}
		session = append(session, strings.TrimSuffix(line, "\n"))
		io.WriteString(c, "echo: "+line)
	}
	s.mu.Lock()
	s.s = append(s.s, strings.Join(session, " "))
	s.mu.Unlock()
}

func (s *server) port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// sessions returns the sessions of the connections that ended, sorted.
func (s *server) sessions() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(slices.Values(s.s))
}
