//go:build linux

// Command testsvc is the service of luod's process-level tests: it reports
// what luod handed it, stores fds of every kind, notifies from its main
// process or a child, and misbehaves on request.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/liveupdate/luo"
	"github.com/liveupdate/luo/activation"
	"github.com/liveupdate/luo/internal/luodtest"
	"github.com/liveupdate/luo/memfd"
	"github.com/liveupdate/luo/sdnotify"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "testsvc:", err)
		os.Exit(1)
	}
}

// initialFDs are the fds open when the service started, with what each
// is (read before the service opens anything).
var initialFDs = listFDs()

// listFDs maps each open fd to its /proc/self/fd link, leaving out the
// directory read to list them and the cgroup files the Go runtime opened
// to follow the CPU limit (Go 1.25).
func listFDs() map[int]string {
	ents, _ := os.ReadDir("/proc/self/fd")
	fds := map[int]string{}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if link, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil {
			fds[fd] = link
		}
	}
	dir := fmt.Sprintf("/proc/%d/fd", os.Getpid())
	for fd, link := range fds {
		if link == dir || strings.HasPrefix(link, "/sys/fs/cgroup/") {
			delete(fds, fd)
		}
	}
	return fds
}

func run() error {
	var stores, removes multi
	report := flag.String("report", "", "write what luod passed to this file")
	ready := flag.Bool("ready", true, "send READY=1")
	unreadyOn := flag.String("unready-on", "", "send no READY=1 when the kernel command line has this word (a unit that will not come up in one boot)")
	status := flag.String("status", "", "send STATUS=")
	from := flag.String("from", "main", "who sends the notifications: main or child")
	nopoll := flag.Bool("nopoll", false, "store with FDPOLL=0")
	mainpidChild := flag.Bool("mainpid-child", false, "fork a child, make it the main process with MAINPID=, exit")
	exitCode := flag.Int("exit", -1, "exit with this code after -exit-delay")
	exitDelay := flag.Duration("exit-delay", 0, "delay before -exit")
	ignoreTerm := flag.Bool("ignore-term", false, "ignore SIGTERM")
	spam := flag.Int("spam", 0, "send this many FDSTORE=1 messages with one memfd each")
	asChild := flag.Bool("as-child", false, "internal: act as the notifying child")
	escape := flag.String("escape", "", "start a process that leaves the session (setsid) and is orphaned (a double fork), and write its pid to this file")
	middle := flag.String("escape-middle", "", "internal: the middle process of -escape")
	escapee := flag.String("as-escapee", "", "internal: the escaping process; its pid goes to this file")
	socket := flag.String("socket", "", "notify this socket instead of $NOTIFY_SOCKET")
	noBarrier := flag.Bool("no-barrier", false, "do not wait for luod to process the notifications")
	asRawArg := flag.String("as-raw", "", "internal: act as the child of ctl child-raw, sending this raw datagram")
	client := flag.String("client", "", "act as a control client of this socket (-client-conns, -client-send, -client-wait), print a JSON summary and exit")
	clientConns := flag.Int("client-conns", 1, "connections of -client")
	clientSend := flag.String("client-send", "", "what -client writes on each connection (a Go-quoted string)")
	clientWait := flag.Duration("client-wait", 10*time.Second, "how long -client waits for each reply")
	ctl := flag.String("ctl", "", "serve commands on this unix socket, one per connection, from READY=1 on: "+
		"store SPEC (as -store), remove NAME, mainpid PID, status-flood N, await-eof NAME, exit CODE, "+
		"raw B64PAYLOAD KINDS [OPTION...], child-raw B64PAYLOAD KINDS, spawn [orphan] (answers ok PID), flood DURATION (answers ok SENT); "+
		"each is answered ok once luod processed it, or with the error")
	flag.Var(&stores, "store", "store NAME=memfd:DATA | NAME=memfd-twice:DATA | NAME=memfd-busy:DATA | NAME=socket | NAME=socket-closed | NAME=pipe (repeatable)")
	flag.Var(&removes, "remove", "send FDSTOREREMOVE=1 for NAME (repeatable)")
	flag.Parse()

	if *unreadyOn != "" {
		if b, err := os.ReadFile("/proc/cmdline"); err == nil && slices.Contains(strings.Fields(string(b)), *unreadyOn) {
			*ready = false
			*status = "will not be READY: " + *unreadyOn + " is on the kernel command line"
		}
	}
	if *client != "" {
		send, err := strconv.Unquote(`"` + *clientSend + `"`)
		if err != nil {
			return fmt.Errorf("-client-send: %w", err)
		}
		return runClient(*client, *clientConns, send, *clientWait)
	}
	if *ignoreTerm {
		signal.Ignore(syscall.SIGTERM)
	}
	if *socket != "" {
		os.Setenv("NOTIFY_SOCKET", *socket)
	}
	n, err := sdnotify.Open()
	if err != nil && !errors.Is(err, sdnotify.ErrNoSocket) {
		return err
	}
	if *noBarrier {
		barrier = false
	}
	if *escapee != "" {
		return beEscapee(*escapee)
	}
	if *middle != "" {
		// In a session of its own, it starts the escapee and exits at
		// once, so the escapee is orphaned too.
		return exec.Command("/proc/self/exe", "-as-escapee", *middle).Start()
	}
	if *escape != "" {
		c := exec.Command("/proc/self/exe", "-escape-middle", *escape)
		c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := c.Run(); err != nil {
			return err
		}
	}
	if *asChild {
		return notify(n, stores, removes, *nopoll, *status, *ready, *spam)
	}
	if *asRawArg != "" {
		return asRaw(n, *asRawArg)
	}
	if *report != "" {
		if err := writeReport(*report); err != nil {
			return err
		}
	}
	if *mainpidChild {
		child, err := startSelf("-from=main", "-report=")
		if err != nil {
			return err
		}
		if err := n.MainPID(child.Process.Pid); err != nil {
			return err
		}
		n.Barrier(context.Background())
		os.Exit(0)
	}
	if *ctl != "" {
		// Listening before READY=1: once the unit is active, the socket
		// answers. A previous instance that was killed left its socket file.
		os.Remove(*ctl)
		l, err := net.Listen("unix", *ctl)
		if err != nil {
			return err
		}
		go serveCtl(l, n, *nopoll)
	}
	switch *from {
	case "main":
		if err := notify(n, stores, removes, *nopoll, *status, *ready, *spam); err != nil {
			return err
		}
	case "child":
		args := []string{"-as-child", "-nopoll=" + strconv.FormatBool(*nopoll), "-status=" + *status,
			"-ready=" + strconv.FormatBool(*ready), "-spam=" + strconv.Itoa(*spam)}
		for _, s := range stores {
			args = append(args, "-store="+s)
		}
		for _, r := range removes {
			args = append(args, "-remove="+r)
		}
		c, err := startSelf(args...)
		if err != nil {
			return err
		}
		c.Wait()
	default:
		return fmt.Errorf("-from %q", *from)
	}
	if *exitCode >= 0 {
		time.Sleep(*exitDelay)
		os.Exit(*exitCode)
	}
	sig := make(chan os.Signal, 1)
	if *ignoreTerm {
		signal.Notify(sig, syscall.SIGINT)
	} else {
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	}
	<-sig
	return nil
}

// serveCtl answers -ctl commands.
func serveCtl(l net.Listener, n *sdnotify.Notifier, nopoll bool) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		line, _ := bufio.NewReader(c).ReadString('\n')
		cmd, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
		ok := "ok"
		switch cmd {
		case "store":
			err = notify(n, multi{arg}, nil, nopoll, "", false, 0)
		case "remove":
			err = notify(n, nil, multi{arg}, nopoll, "", false, 0)
		case "mainpid":
			err = n.Notify("MAINPID=" + arg)
			if err == nil {
				err = n.Barrier(context.Background())
			}
		case "status-flood":
			// Sends arg STATUS= messages, each different, as fast as it
			// can, then a barrier.
			var count int
			if count, err = strconv.Atoi(arg); err == nil {
				for i := 0; i < count && err == nil; i++ {
					err = n.Status(fmt.Sprintf("flood %d", i))
				}
				if err == nil {
					err = n.Barrier(context.Background())
				}
			}
		case "await-eof":
			// Waits (5 s at most) until the peer of the pipe stored as
			// arg sees end-of-file: luod closed its end.
			err = awaitEOF(peerOf[arg])
		case "raw":
			err = rawCommand(n, arg)
		case "child-raw":
			err = childRaw(arg)
		case "spawn":
			var pid int
			if pid, err = spawnSleeper(arg); err == nil {
				ok = fmt.Sprintf("ok %d", pid)
			}
		case "flood":
			var sent int
			sent, err = flood(n, arg)
			ok = fmt.Sprintf("ok %d", sent)
		case "exit":
			var code int
			if code, err = strconv.Atoi(arg); err == nil {
				fmt.Fprintln(c, "ok")
				os.Exit(code)
			}
		default:
			err = fmt.Errorf("unknown command %q", cmd)
		}
		if err != nil {
			fmt.Fprintln(c, err)
		} else {
			fmt.Fprintln(c, ok)
		}
		c.Close()
	}
}

// beEscapee is the process of -escape: it writes its pid and sleeps
// (not select{}, which the runtime would take for a deadlock). It ignores
// SIGTERM, so that only a SIGKILL stops it.
func beEscapee(pidFile string) error {
	signal.Ignore(syscall.SIGTERM)
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return err
	}
	for {
		time.Sleep(time.Hour)
	}
}

func awaitEOF(r *os.File) error {
	if r == nil {
		return errors.New("no such pipe")
	}
	r.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := r.Read(make([]byte, 1))
	switch {
	case err == io.EOF:
		return nil
	case err != nil:
		return fmt.Errorf("no end-of-file: %w", err)
	}
	return fmt.Errorf("read %d bytes instead of end-of-file", n)
}

func startSelf(args ...string) (*exec.Cmd, error) {
	c := exec.Command("/proc/self/exe", args...)
	c.Stdout, c.Stderr = os.Stdout, os.Stderr
	return c, c.Start()
}

// peers keeps the other ends of stored sockets and pipes open; busy keeps
// the sessions of memfd-busy.
var (
	peerOf  = map[string]*os.File{} // read end of each pipe stored, by name
	peers   []*os.File
	busy    []*luo.Session
	barrier = true
)

func notify(n *sdnotify.Notifier, stores, removes multi, nopoll bool, status string, ready bool, spam int) error {
	opts := &sdnotify.StoreOptions{NoPoll: nopoll}
	for _, s := range stores {
		name, kind, _ := strings.Cut(s, "=")
		kind, arg, _ := strings.Cut(kind, ":")
		var f *os.File
		switch kind {
		case "memfd":
			m, err := memfd.New(name, 0)
			if err != nil {
				return err
			}
			m.WriteString(arg)
			f = m
		case "memfd-twice":
			m, err := memfd.New(name, 0)
			if err != nil {
				return err
			}
			m.WriteString(arg)
			if err := n.StoreFiles(name, []*os.File{m}, opts); err != nil {
				return err
			}
			f = m
		case "memfd-busy":
			// A memfd preserved in a LUO session of this process (not
			// stored): luod's preservation gets EBUSY.
			m, err := memfd.New(name, 0)
			if err != nil {
				return err
			}
			m.WriteString(arg)
			dev, err := luo.Open()
			if err != nil {
				return err
			}
			s, err := dev.CreateSession("testsvc-busy-" + name)
			dev.Close()
			if err != nil {
				return err
			}
			if err := s.PreserveFD(m, 1); err != nil {
				return err
			}
			busy = append(busy, s)
			f = m
		case "socket", "socket-closed":
			fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			f = os.NewFile(uintptr(fds[0]), name)
			peer := os.NewFile(uintptr(fds[1]), "peer")
			if kind == "socket" {
				peers = append(peers, peer)
			} else {
				defer peer.Close() // closed after storing: luod sees POLLHUP
			}
		case "pipe":
			r, w, err := os.Pipe()
			if err != nil {
				return err
			}
			f = w
			peers = append(peers, r)
			peerOf[name] = r
		default:
			return fmt.Errorf("-store %q: unknown kind", s)
		}
		if err := n.StoreFiles(name, []*os.File{f}, opts); err != nil {
			return err
		}
		f.Close()
	}
	for i := 0; i < spam; i++ {
		m, err := memfd.New("spam", 0)
		if err != nil {
			return err
		}
		fmt.Fprintf(m, "spam-%d", i)
		if err := n.StoreFiles("spam", []*os.File{m}, opts); err != nil {
			return err
		}
		m.Close()
	}
	for _, r := range removes {
		if err := n.RemoveFiles(r); err != nil {
			return err
		}
	}
	if status != "" {
		if err := n.Status(status); err != nil {
			return err
		}
	}
	if ready {
		if err := n.Ready(); err != nil {
			return err
		}
	}
	// Make sure luod processed everything before a child exits.
	if n == nil || !barrier {
		return nil
	}
	return n.Barrier(context.Background())
}

func writeReport(path string) error {
	r := luodtest.Report{PID: os.Getpid(), ListenPID: os.Getenv("LISTEN_PID"), Contents: map[string]string{}, Env: map[string]string{},
		UID: os.Getuid(), GID: os.Getgid()}
	r.Dir, _ = os.Getwd()
	r.FDs = initialFDs
	for _, k := range []string{"LISTEN_FDS", "LISTEN_FDNAMES", "LISTEN_PIDFDID", "NOTIFY_SOCKET", "FDSTORE", "LUOD_UNIT", "INVOCATION_ID",
		"FOO", "BAR", "QUOTED", "HOME", "PATH"} {
		r.Env[k] = os.Getenv(k)
	}
	fs, err := activation.Receive(&activation.Config{UnsetEnv: true})
	if err != nil {
		r.Err = err.Error()
	}
	for _, f := range fs.All() {
		r.Names = append(r.Names, f.Name())
		if _, ok := r.Contents[f.Name()]; ok {
			continue
		}
		if b, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<20)); err == nil {
			r.Contents[f.Name()] = string(b)
		}
	}
	b, _ := json.Marshal(r)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
