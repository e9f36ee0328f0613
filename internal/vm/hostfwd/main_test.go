package main

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestMain runs main when the test binary is started as hostfwd by
// startForwarder.
func TestMain(m *testing.M) {
	if os.Getenv("HOSTFWD_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestCheckAddr(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:2379":        "127.0.0.1:2379",
		"[::1]:80":              "[::1]:80",
		"127.0.0.1:0":           "",
		"127.0.0.2:80":          "",
		"10.0.2.2:80":           "",
		"[::ffff:127.0.0.1]:80": "",
		"localhost:80":          "",
		"0.0.0.0:80":            "",
		"127.0.0.1":             "",
		"":                      "",
	} {
		got, err := checkAddr(addr)
		if got != want || (err != nil) != (want == "") {
			t.Errorf("checkAddr(%q) = %q, %v; want %q", addr, got, err, want)
		}
	}
}

// startForwarder runs this test binary as hostfwd ADDR with one end of a TCP
// connection as its standard input and output, as QEMU does, and returns the
// other end and the running command.
func startForwarder(t *testing.T, addr string) (*net.TCPConn, *exec.Cmd) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	guest, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { guest.Close() })
	qemuSide, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	f, err := qemuSide.(*net.TCPConn).File()
	qemuSide.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(os.Args[0], addr)
	cmd.Env = append(os.Environ(), "HOSTFWD_TEST_MAIN=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = f, f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	guest.SetDeadline(time.Now().Add(20 * time.Second))
	return guest.(*net.TCPConn), cmd
}

// exitCode waits for cmd and returns its exit code.
func exitCode(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	err := cmd.Wait()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	default:
		t.Fatal(err)
		return -1
	}
}

// TestForward checks both half-closes: the guest's EOF reaches the server,
// which answers only then, and the server's close reaches the guest.
func TestForward(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						io.WriteString(c, "bye after "+line+"\n")
						return
					}
					io.WriteString(c, "echo: "+line)
				}
			}()
		}
	}()

	guest, cmd := startForwarder(t, ln.Addr().String())
	r := bufio.NewReader(guest)
	for _, msg := range []string{"one\n", "two\n"} {
		if _, err := io.WriteString(guest, msg); err != nil {
			t.Fatal(err)
		}
		if got, err := r.ReadString('\n'); got != "echo: "+msg || err != nil {
			t.Fatalf("answer to %q: %q, %v", msg, got, err)
		}
	}
	if _, err := io.WriteString(guest, "last, unterminated"); err != nil {
		t.Fatal(err)
	}
	if err := guest.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(r)
	if want := "bye after last, unterminated\n"; string(rest) != want || err != nil {
		t.Errorf("after the half-close: %q, %v; want %q and EOF", rest, err, want)
	}
	if code := exitCode(t, cmd); code != 0 {
		t.Errorf("hostfwd exited with %d, want 0", code)
	}
}

func TestForwardRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	for addr, want := range map[string]int{
		"10.0.2.2:80": 2, // not the loopback
		closed:        1, // nobody listens
	} {
		t.Run(strings.ReplaceAll(addr, ":", "_"), func(t *testing.T) {
			guest, cmd := startForwarder(t, addr)
			if b, err := io.ReadAll(guest); len(b) > 0 || err != nil {
				t.Errorf("guest read %q, %v; want an immediate EOF", b, err)
			}
			if code := exitCode(t, cmd); code != want {
				t.Errorf("hostfwd %s exited with %d, want %d", addr, code, want)
			}
		})
	}
}
