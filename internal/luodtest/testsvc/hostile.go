//go:build linux

package main

// What testsvc does for the hostile-input tests: datagrams built by hand,
// sent from the main process or a child, a flood of them, and a control
// client that misbehaves.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/liveupdate/luo/memfd"
	"github.com/liveupdate/luo/sdnotify"
)

// rawCommand runs the ctl command "raw B64PAYLOAD KINDS [OPTION...]": it
// sends one datagram with the decoded payload ("-" for an empty one) and the files of KINDS (see
// rawFiles) straight to the notify socket with sendmsg(2), then waits for
// a barrier. Options: "nobarrier" (do not wait), "pid=N" (put N in
// SCM_CREDENTIALS instead of our own pid, which only CAP_SYS_ADMIN may).
func rawCommand(n *sdnotify.Notifier, arg string) error {
	f := strings.Fields(arg)
	if len(f) < 2 {
		return errors.New("usage: raw B64PAYLOAD KINDS [nobarrier] [pid=N]")
	}
	var payload []byte
	var err error
	if f[0] != "-" {
		if payload, err = base64.StdEncoding.DecodeString(f[0]); err != nil {
			return fmt.Errorf("payload: %w", err)
		}
	}
	wait, pid := true, 0
	for _, o := range f[2:] {
		switch {
		case o == "nobarrier":
			wait = false
		case strings.HasPrefix(o, "pid="):
			if pid, err = strconv.Atoi(o[4:]); err != nil {
				return fmt.Errorf("option %q: %w", o, err)
			}
		default:
			return fmt.Errorf("unknown option %q", o)
		}
	}
	files, err := rawFiles(f[1])
	if err != nil {
		return err
	}
	err = sendRaw(n.Addr(), payload, files, pid)
	for _, f := range files {
		f.Close() // luod holds the only copies now
	}
	if err != nil || !wait {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return n.Barrier(ctx)
}

// sendRaw sends payload and files as one datagram to addr. With pid != 0
// the datagram carries SCM_CREDENTIALS with that pid and our ids.
func sendRaw(addr string, payload []byte, files []*os.File, pid int) error {
	sock, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(sock)
	var oob []byte
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			fds[i] = int(f.Fd())
		}
		oob = unix.UnixRights(fds...)
	}
	if pid != 0 {
		oob = append(oob, unix.UnixCredentials(&unix.Ucred{Pid: int32(pid), Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid())})...)
	}
	err = unix.Sendmsg(sock, payload, oob, &unix.SockaddrUnix{Name: addr}, unix.MSG_NOSIGNAL)
	runtime.KeepAlive(files)
	if err != nil {
		return fmt.Errorf("sendmsg: %w", err)
	}
	return nil
}

// rawFiles makes the files of KINDS: "-" for none, or a comma-separated
// list of KIND or KIND*COUNT, where KIND is
//
//	memfd      a memfd holding "raw"
//	pipe       the write end of a pipe; the read end is kept as rawI
//	socket     one end of a stream socketpair; the other is kept as rawI
//	null       /dev/null
//	dir        the directory /
//	eventfd    an eventfd
//	linger:S   a TCP connection with unsent data and SO_LINGER of S
//	           seconds: closing the last copy blocks for up to S seconds
//
// where I is the file's index in the datagram (for await-eof).
func rawFiles(kinds string) ([]*os.File, error) {
	if kinds == "-" {
		return nil, nil
	}
	var files []*os.File
	fail := func(err error) ([]*os.File, error) {
		for _, f := range files {
			f.Close()
		}
		return nil, err
	}
	for _, item := range strings.Split(kinds, ",") {
		kind, count := item, 1
		if k, c, ok := strings.Cut(item, "*"); ok {
			n, err := strconv.Atoi(c)
			if err != nil || n < 0 {
				return fail(fmt.Errorf("kind %q: bad count", item))
			}
			kind, count = k, n
		}
		for range count {
			f, err := rawFile(kind, fmt.Sprintf("raw%d", len(files)))
			if err != nil {
				return fail(fmt.Errorf("kind %q: %w", kind, err))
			}
			files = append(files, f)
		}
	}
	return files, nil
}

// rawFile makes one file of rawFiles; name is what its peer is kept as.
func rawFile(kind, name string) (*os.File, error) {
	kind, arg, _ := strings.Cut(kind, ":")
	switch kind {
	case "memfd":
		m, err := memfd.New(name, 0)
		if err != nil {
			return nil, err
		}
		m.WriteString("raw")
		return m, nil
	case "pipe":
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		peerOf[name] = r
		return w, nil
	case "socket":
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		peerOf[name] = os.NewFile(uintptr(fds[1]), name+"-peer")
		return os.NewFile(uintptr(fds[0]), name), nil
	case "null":
		return os.Open(os.DevNull)
	case "dir":
		return os.Open("/")
	case "eventfd":
		fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
		if err != nil {
			return nil, err
		}
		return os.NewFile(uintptr(fd), name), nil
	case "linger":
		secs, err := strconv.Atoi(arg)
		if err != nil {
			return nil, fmt.Errorf("linger:SECONDS: %w", err)
		}
		return lingeringSocket(secs)
	}
	return nil, errors.New("unknown kind")
}

// lingeringSocket returns a TCP connection to a peer that never reads,
// with its send buffer full and SO_LINGER set: close(2) of its last copy
// waits for up to secs seconds for the data to go out.
func lingeringSocket(secs int) (*os.File, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer l.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	s, err := l.Accept()
	if err != nil {
		return nil, err
	}
	idle = append(idle, s) // the peer that never reads
	f, err := c.(*net.TCPConn).File()
	if err != nil {
		return nil, err
	}
	fd := int(f.Fd())
	if err := unix.SetNonblock(fd, true); err != nil {
		f.Close()
		return nil, err
	}
	buf := make([]byte, 64<<10)
	for {
		if _, err := unix.Write(fd, buf); err != nil {
			break // EAGAIN: both buffers are full
		}
	}
	if err := unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: int32(secs)}); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// idle keeps the peers that must stay open without being read.
var idle []net.Conn

// childRaw runs the ctl command "child-raw B64PAYLOAD KINDS": a child
// process of this one (so of the same unit, but not its main process)
// does what "raw" does.
func childRaw(arg string) error {
	c := exec.Command("/proc/self/exe", "-as-raw", arg)
	out, err := c.CombinedOutput()
	if err != nil {
		return fmt.Errorf("child: %v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// asRaw is the child of childRaw.
func asRaw(n *sdnotify.Notifier, arg string) error {
	if n == nil {
		return sdnotify.ErrNoSocket
	}
	return rawCommand(n, arg)
}

// spawnSleeper runs the ctl command "spawn [orphan]": it starts a process
// that sleeps (a process of the unit other than its main process) and
// returns its pid. It is our child, which we reap; with orphan, its parent
// exits at once, so that it is reparented to luod (the subreaper).
func spawnSleeper(arg string) (int, error) {
	if arg == "orphan" {
		out, err := exec.Command("sh", "-c", "sleep 3600 </dev/null >/dev/null 2>&1 & echo $!").Output()
		if err != nil {
			return 0, err
		}
		return strconv.Atoi(strings.TrimSpace(string(out)))
	}
	c := exec.Command("sleep", "3600")
	if err := c.Start(); err != nil {
		return 0, err
	}
	go c.Wait()
	return c.Process.Pid, nil
}

// flood runs the ctl command "flood DURATION": for that long it sends, as
// fast as luod takes them, a rotation of valid and invalid datagrams, with
// and without fds, then waits for a barrier. It returns how many it sent.
func flood(n *sdnotify.Notifier, arg string) (int, error) {
	d, err := time.ParseDuration(arg)
	if err != nil {
		return 0, err
	}
	mem, err := memfd.New("flood", 0)
	if err != nil {
		return 0, err
	}
	defer mem.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer r.Close()
	defer w.Close()
	one, two := []*os.File{mem}, []*os.File{mem, w}
	big := "STATUS=" + strings.Repeat("x", 5000)
	type dgram struct {
		payload string
		files   []*os.File
	}
	rotation := []dgram{
		{"STATUS=flooding", nil},
		{"FDSTORE=1\nFDNAME=flood", one},        // stored once, then duplicates
		{"FDSTORE=1\nFDNAME=x\x00y", two},       // embedded NUL: dropped
		{big, two},                              // truncated: dropped
		{"STATUS=trailing\\", one},              // lone backslash: dropped
		{"BARRIER=1", two},                      // barrier with 2 fds
		{"READY=1", two},                        // fds without FDSTORE=1
		{"FDSTOREREMOVE=1", nil},                // no name
		{"MAINPID=1", nil},                      // not of the unit
		{"FDSTORE=1\nFDNAME=bad:name", one},     // invalid name
		{"STATUS=\xff\xfe", nil},                // not UTF-8
		{"FDSTOREREMOVE=1\nFDNAME=absent", nil}, // nothing to remove
	}
	sock, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(sock)
	to := &unix.SockaddrUnix{Name: n.Addr()}
	oob := make([][]byte, len(rotation))
	for i, g := range rotation {
		if len(g.files) > 0 {
			var fds []int
			for _, f := range g.files {
				fds = append(fds, int(f.Fd()))
			}
			oob[i] = unix.UnixRights(fds...)
		}
	}
	sent := 0
	for end := time.Now().Add(d); time.Now().Before(end); {
		i := sent % len(rotation)
		if err := unix.Sendmsg(sock, []byte(rotation[i].payload), oob[i], to, unix.MSG_NOSIGNAL); err != nil {
			return sent, fmt.Errorf("sendmsg %d: %w", sent, err)
		}
		sent++
	}
	runtime.KeepAlive(mem)
	runtime.KeepAlive(w)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return sent, n.Barrier(ctx)
}

// ClientResult is what -client prints: how each connection ended, by
// outcome ("error NAME" for an error reply, "reply" for another one,
// "closed" when luod hung up without a reply, "open" when it was still
// open at the deadline, "dial ERROR"), and when the last one ended.
type ClientResult struct {
	Outcomes map[string]int `json:"outcomes"`
	Elapsed  time.Duration  `json:"elapsed"`
}

// runClient is -client: it opens conns connections to the control socket
// at path, writes send on each, and reads each one's first reply (up to
// its NUL) or end, for wait at most. It prints a ClientResult.
func runClient(path string, conns int, send string, wait time.Duration) error {
	res := ClientResult{Outcomes: map[string]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(wait)
	for range conns {
		c, err := net.Dial("unix", path)
		if err != nil {
			res.Outcomes["dial "+errText(err)]++
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			outcome := clientOutcome(c, send, deadline)
			mu.Lock()
			res.Outcomes[outcome]++
			res.Elapsed = max(res.Elapsed, time.Since(start))
			mu.Unlock()
		}()
	}
	wg.Wait()
	return json.NewEncoder(os.Stdout).Encode(res)
}

func clientOutcome(c net.Conn, send string, deadline time.Time) string {
	c.SetDeadline(deadline)
	if send != "" {
		if _, err := io.WriteString(c, send); err != nil {
			return "write " + errText(err)
		}
	}
	b, err := bufio.NewReader(c).ReadBytes(0)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "open"
	case err != nil && len(b) == 0:
		return "closed"
	case err != nil:
		return "partial reply"
	}
	var reply struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b[:len(b)-1], &reply) == nil && reply.Error != "" {
		return "error " + reply.Error
	}
	return "reply"
}

// errText is the errno's text of err when it has one.
func errText(err error) string {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return err.Error()
}
