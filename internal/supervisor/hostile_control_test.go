//go:build linux

package supervisor_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/control"
	"github.com/liveupdate/luo/internal/luodtest"
)

// TestHostileControl talks to luod's control socket as a client that is
// not root or that does not speak the protocol. luod must keep answering
// everyone else, and its fd count must come back once such a client is
// gone.
func TestHostileControl(t *testing.T) {
	h := startHostile(t)
	d := h.d

	t.Run("a non-root client is refused", func(t *testing.T) {
		b := h.before(t)
		out, code := asNobody(t, d, filepath.Join(d.Bin, "luoctl"), "--socket", d.Socket, "list")
		if code != 6 || !strings.Contains(out, "permission denied") {
			t.Errorf("luoctl as nobody: exit %d, %q; want exit 6, permission denied", code, out)
		}
		h.after(t, b, nil)
	})

	t.Run("non-root clients on a socket made world-writable", func(t *testing.T) {
		// As if an operator had widened the socket's mode: luod itself
		// still refuses anyone but root, and a silent client is cut off.
		openUpTo(d.Runtime, d.Bin)
		if err := os.Chmod(d.Socket, 0o666); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(d.Socket, 0o600)
		b := h.before(t)
		out, code := asNobody(t, d, filepath.Join(d.Bin, "luoctl"), "--socket", d.Socket, "list")
		if code != 6 || !strings.Contains(out, "root-only") {
			t.Errorf("luoctl as nobody: exit %d, %q; want exit 6, root-only", code, out)
		}
		type result struct {
			r   clientResult
			err error
		}
		calls, silent := make(chan result, 1), make(chan result, 1)
		go func() {
			r, err := nobodyClient(t, d, 20, `{\"method\":\"io.luo.Manager.ListUnits\"}\x00`)
			calls <- result{r, err}
		}()
		go func() {
			r, err := nobodyClient(t, d, 100, "")
			silent <- result{r, err}
		}()
		// Meanwhile root is answered at once.
		slowest := time.Duration(0)
		for done := time.After(4 * time.Second); ; {
			start := time.Now()
			answers(t, d)
			slowest = max(slowest, time.Since(start))
			select {
			case <-done:
			case <-time.After(100 * time.Millisecond):
				continue
			}
			break
		}
		if slowest > time.Second {
			t.Errorf("root waited up to %v for an answer while nobody held 100 connections", slowest)
		}
		r := <-calls
		if r.err != nil || r.r.Outcomes["error "+control.VarlinkPermissionDenied] != 20 {
			t.Errorf("20 calls as nobody: %+v %v, want 20 PermissionDenied", r.r, r.err)
		}
		r = <-silent
		if r.err != nil || r.r.Outcomes["closed"] != 100 || r.r.Elapsed > 8*time.Second {
			t.Errorf("100 silent connections as nobody: %+v %v, want all closed by luod within 8 s", r.r, r.err)
		}
		h.after(t, b, nil)
		logLine(t, d, b.log, "control: refusing connection from pid", "uid 65534: not root")
		if n := logLines(d, b.log, "control: refusing connection"); n != 121 {
			t.Errorf("luod logged %d refusals, want 121", n)
		}
	})

	// The root clients below write bytes and read what luod answers.
	for _, c := range []struct {
		name  string
		send  string
		reply string // the error of the reply, "" for none
		open  bool   // the connection stays usable
		log   string // part of luod's log line, if any
	}{
		{"garbage", "\xff\xfegarbage\x00", "io.luo.Manager.ProtocolError", false, "message is not a JSON object; closing the connection"},
		{"a lone NUL", "\x00", "io.luo.Manager.ProtocolError", false, "message is not a JSON object; closing the connection"},
		{"an unknown method", `{"method":"io.luo.Manager.Frobnicate"}` + "\x00", control.VarlinkMethodNotFound, true, ""},
		{"an unknown interface", `{"method":"org.example.Frobnicate"}` + "\x00", control.VarlinkInterfaceNotFound, true, ""},
		{"a method without an interface", `{"method":"GetManager"}` + "\x00", "io.luo.Manager.ProtocolError", false, "is not of the form interface.Method; closing the connection"},
		{"parameters of the wrong type", `{"method":"io.luo.Manager.GetUnit","parameters":{"name":42}}` + "\x00", control.VarlinkInvalidParameter, true, ""},
		{"a list for a string list", `{"method":"io.luo.Manager.CleanUnit","parameters":{"name":"actor.service","what":"fdstore"}}` + "\x00", control.VarlinkInvalidParameter, true, ""},
		{"unknown parameters", `{"method":"io.luo.Manager.GetUnit","parameters":{"name":"actor.service","x":1}}` + "\x00", control.VarlinkInvalidParameter, true, ""},
		{"parameters that are not an object", `{"method":"io.luo.Manager.GetUnit","parameters":[1,2]}` + "\x00", "io.luo.Manager.ProtocolError", false, `parameters\" is not a JSON object; closing the connection`},
		{"upgrade", `{"method":"io.luo.Manager.GetManager","upgrade":true}` + "\x00", control.VarlinkInvalidParameter, true, ""},
		{"a message of 2 MiB", strings.Repeat("a", 2<<20), "io.luo.Manager.ProtocolError", false, "message too large: more than 1048576 bytes; closing the connection"},
		{"JSON nested 100,000 deep", `{"method":"io.luo.Manager.GetManager","parameters":{"a":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + "}}\x00",
			"io.luo.Manager.ProtocolError", false, "malformed call"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := h.before(t)
			conn := dialControl(t, d)
			// luod may hang up before it read everything (2 MiB).
			go io.WriteString(conn, c.send)
			got, err := readReply(conn)
			if err != nil {
				t.Fatalf("no reply: %v", err)
			}
			if got.Error != c.reply {
				t.Errorf("reply %+v, want error %q", got, c.reply)
			}
			// Usable still, or closed by luod.
			io.WriteString(conn, `{"method":"io.luo.Manager.GetManager"}`+"\x00")
			next, err := readReply(conn)
			switch {
			case c.open && (err != nil || next.Error != ""):
				t.Errorf("the connection is not usable after that: %+v %v", next, err)
			case !c.open && !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE):
				t.Errorf("luod did not close the connection: %+v %v", next, err)
			}
			conn.Close()
			h.after(t, b, nil)
			if c.log != "" {
				logLine(t, d, b.log, "control: pid", c.log)
			}
		})
	}

	t.Run("a half message, then silence", func(t *testing.T) {
		b := h.before(t)
		conn := dialControl(t, d)
		io.WriteString(conn, `{"method":"io.luo.Manager.GetMan`)
		time.Sleep(500 * time.Millisecond)
		answers(t, d) // while that connection hangs
		conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if n, err := conn.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("luod answered half a message: %d bytes, %v", n, err)
		}
		conn.Close()
		h.after(t, b, nil)
	})

	// A kernel or initrd that is a FIFO would block the open until a
	// writer comes, and a staging holds the update lock meanwhile: every
	// call naming one answers at once, and the next update is not blocked.
	t.Run("a FIFO or a directory as the kernel", func(t *testing.T) {
		fifo := filepath.Join(d.Dir, "kernel.fifo")
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, p := range []control.UpdateParams{
			{Kernel: fifo, Cmdline: "liveupdate=on"},
			{Kernel: d.Dir, Cmdline: "liveupdate=on"},
			{Kernel: "/dev/null", Initrd: fifo, Cmdline: "liveupdate=on"},
		} {
			b := h.before(t)
			var plan control.Plan
			if err := d.CallWithin(answerWithin, control.MethodPlanUpdate, p, &plan); err != nil {
				t.Fatalf("PlanUpdate %+v: %v", p, err)
			}
			if plan.OK {
				t.Errorf("plan into %+v is OK", p)
			}
			// No LUO device on this host: the plan refuses the staging;
			// with one, so would the image check.
			err := d.CallWithin(answerWithin, control.MethodStageUpdate, control.StageParams{Kernel: p.Kernel, Initrd: p.Initrd, Cmdline: p.Cmdline}, nil)
			var re *control.RemoteError
			if !errors.As(err, &re) || re.Name != control.ErrUpdateFailed {
				t.Errorf("StageUpdate %+v: %v, want UpdateFailed", p, err)
			}
			answers(t, d)
			h.after(t, b, nil)
		}
		var plan control.Plan
		if err := d.CallWithin(answerWithin, control.MethodPlanUpdate, control.UpdateParams{Kernel: fifo, Cmdline: "liveupdate=on"}, &plan); err != nil {
			t.Fatal(err)
		}
		var detail string
		for _, c := range plan.Checks {
			if !c.OK && strings.Contains(c.Detail, "not a regular file") {
				detail = c.Detail
			}
		}
		if detail == "" {
			t.Errorf("no check of the plan says the kernel is not a regular file: %+v", plan.Checks)
		}
	})

	t.Run("200 silent connections", func(t *testing.T) {
		b := h.before(t)
		var conns []net.Conn
		for range 200 {
			conns = append(conns, dialControl(t, d))
		}
		answers(t, d)
		h.bystanderUntouched(t)
		for _, c := range conns {
			c.Close()
		}
		h.after(t, b, nil)
	})
}

// reply is a control reply as it travels.
type reply struct {
	Parameters json.RawMessage `json:"parameters"`
	Error      string          `json:"error"`
}

func dialControl(t *testing.T, d *luodtest.Daemon) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", d.Socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readReply reads one reply (5 s at most).
func readReply(c net.Conn) (reply, error) {
	var r reply
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := bufio.NewReader(c).ReadBytes(0)
	if err != nil {
		return r, err
	}
	err = json.Unmarshal(b[:len(b)-1], &r)
	return r, err
}

// asNobody runs a command as nobody and returns its output and exit code.
func asNobody(t *testing.T, d *luodtest.Daemon, name string, args ...string) (string, int) {
	t.Helper()
	openUpTo(d.Bin)
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	return luodtest.Output(t, cmd)
}

// clientResult is what testsvc -client prints.
type clientResult struct {
	Outcomes map[string]int `json:"outcomes"`
	Elapsed  time.Duration  `json:"elapsed"`
}

// nobodyClient runs testsvc -client as nobody: conns connections to
// luod's control socket, each sending send (Go-quoted).
func nobodyClient(t *testing.T, d *luodtest.Daemon, conns int, send string) (clientResult, error) {
	var r clientResult
	cmd := exec.Command(filepath.Join(d.Bin, "testsvc"), "-client", d.Socket, "-client-conns", fmt.Sprint(conns),
		"-client-send", send, "-client-wait", "20s")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return r, fmt.Errorf("testsvc -client: %w", err)
	}
	return r, json.Unmarshal(out, &r)
}
