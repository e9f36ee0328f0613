//go:build linux && vmguest

package hostfwd

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/vm"
	"github.com/liveupdate/luo/internal/vmtest"
)

func TestMain(m *testing.M) { vmtest.GuestMain(m) }

func readPorts(t *testing.T) ports {
	t.Helper()
	b, err := os.ReadFile(vm.DiskDir + "/" + portsFile)
	if err != nil {
		t.Fatal(err)
	}
	var p ports
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestNetwork checks the address the kernel gave eth0 from the ip=
// parameter, which the next stage's command line keeps too.
func TestNetwork(t *testing.T) {
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	const ip = "ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:off"
	if !strings.Contains(string(b), ip) {
		t.Errorf("/proc/cmdline %q lacks %s", b, ip)
	}
	p, err := vm.ReadPlan()
	if err != nil {
		t.Fatal(err)
	}
	if next := p.StageCmdline(vm.Stage() + 1); !strings.Contains(next, ip) {
		t.Errorf("the next stage's command line %q lacks %s", next, ip)
	}
	eth0, err := net.InterfaceByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := eth0.Addrs()
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, a := range addrs {
		found = found || a.String() == "10.0.2.15/24"
	}
	if !found || eth0.Flags&net.FlagUp == 0 {
		t.Errorf("eth0: flags %v, addresses %v; want up with 10.0.2.15/24", eth0.Flags, addrs)
	}
}

// A session is one connection to the forwarded port.
type session struct {
	t *testing.T
	c *net.TCPConn
	r *bufio.Reader
}

func dialForward(t *testing.T, port int) *session {
	t.Helper()
	c, err := net.DialTimeout("tcp", net.JoinHostPort(vm.HostIP, strconv.Itoa(port)), 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return &session{t: t, c: c.(*net.TCPConn), r: bufio.NewReader(c)}
}

// line sends a line and checks its echo.
func (s *session) line(text string) {
	s.t.Helper()
	if _, err := io.WriteString(s.c, text+"\n"); err != nil {
		s.t.Fatal(err)
	}
	if got, err := s.r.ReadString('\n'); got != "echo: "+text+"\n" || err != nil {
		s.t.Fatalf("answer to %q: %q, %v", text, got, err)
	}
}

// end sends rest without a newline, closes the write side and checks the
// server's last answer, sent only once it has seen the EOF, and its close.
func (s *session) end(rest string) {
	s.t.Helper()
	if _, err := io.WriteString(s.c, rest); err != nil {
		s.t.Fatal(err)
	}
	if err := s.c.CloseWrite(); err != nil {
		s.t.Fatal(err)
	}
	got, err := io.ReadAll(s.r)
	if want := "bye after " + rest + "\n"; string(got) != want || err != nil {
		s.t.Fatalf("after the half-close: %q, %v; want %q and EOF", got, err, want)
	}
}

// TestForward makes three connections to the host's server through the
// forward, two of them open at once.
func TestForward(t *testing.T) {
	p := readPorts(t)
	a := dialForward(t, p.Guest)
	a.line("a1")
	b := dialForward(t, p.Guest)
	b.line("b1")
	a.line("a2")
	b.end("b2")
	a.end("a3")
	c := dialForward(t, p.Guest)
	c.line("c1")
	c.end("")
}

// TestRestricted checks that the guest reaches nothing but the forward.
// User networking with restrict=on drops what it does not forward, so a
// connection attempt times out.
func TestRestricted(t *testing.T) {
	p := readPorts(t)
	for name, addr := range map[string]string{
		"host port at the gateway": net.JoinHostPort("10.0.2.2", strconv.Itoa(p.TCP)),
		"another port on HostIP":   net.JoinHostPort(vm.HostIP, strconv.Itoa(p.Guest+1)),
		"the DNS forwarder":        "10.0.2.3:53",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, err := net.DialTimeout("tcp", addr, 3*time.Second)
			if err == nil {
				io.WriteString(c, "leak\n")
				c.Close()
				t.Fatalf("connected to %s", addr)
			}
			t.Logf("%s: %v", addr, err)
		})
	}
	t.Run("UDP to the host", func(t *testing.T) {
		t.Parallel()
		// The host checks that none of these arrive.
		c, err := net.Dial("udp", net.JoinHostPort("10.0.2.2", strconv.Itoa(p.UDP)))
		if err != nil {
			t.Logf("%v", err)
			return
		}
		defer c.Close()
		for range 3 {
			c.Write([]byte("leak"))
			time.Sleep(100 * time.Millisecond)
		}
	})
}
