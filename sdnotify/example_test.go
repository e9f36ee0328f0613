//go:build linux

package sdnotify_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/liveupdate/luo/memfd"
	"github.com/liveupdate/luo/sdnotify"
)

// A Type=notify service reports its progress, puts a memfd holding its state
// in its fd store (the unit needs FileDescriptorStoreMax=1 or more) and
// reports readiness. Without a manager, every call returns ErrNoSocket, which
// the service ignores.
//
// Here the manager is played by the example: it prints each notification it
// receives, and the files that come with it.
func Example() {
	m := startManager() // sets $NOTIFY_SOCKET, as systemd or luod do
	defer m.stop()

	n, err := sdnotify.Open()
	if err != nil && !errors.Is(err, sdnotify.ErrNoSocket) {
		log.Fatal(err)
	}
	defer n.Close() // n may be nil: every method then returns ErrNoSocket

	if err := n.Status("loading state"); err != nil && !errors.Is(err, sdnotify.ErrNoSocket) {
		log.Fatal(err)
	}
	m.receive()

	state, err := memfd.New("state", 4096)
	if err != nil {
		log.Fatal(err)
	}
	defer state.Close()
	// FDPOLL=0: a memfd never hangs up, there is nothing to watch.
	if err := n.StoreFiles("state", []*os.File{state}, &sdnotify.StoreOptions{NoPoll: true}); err != nil && !errors.Is(err, sdnotify.ErrNoSocket) {
		log.Fatal(err)
	}
	m.receive()

	if err := n.Ready(); err != nil && !errors.Is(err, sdnotify.ErrNoSocket) {
		log.Fatal(err)
	}
	m.receive()
	// Output:
	// "STATUS=loading state"
	// "FDSTORE=1\nFDNAME=state\nFDPOLL=0" + /memfd:state
	// "READY=1"
}

// Started without a service manager (from a shell, say), a service gets
// ErrNoSocket and a nil *Notifier, whose methods all return ErrNoSocket: it
// can keep calling them and ignore that error.
func ExampleOpen_withoutManager() {
	defer unsetNotifySocket()() // as when the service is started from a shell

	n, err := sdnotify.Open()
	if errors.Is(err, sdnotify.ErrNoSocket) {
		fmt.Println("no service manager: running standalone")
	}
	err = n.Ready()
	fmt.Println(errors.Is(err, sdnotify.ErrNoSocket))
	// Output:
	// no service manager: running standalone
	// true
}

// Notify sends any assignments of sd_notify(3) in one message, and rejects
// what the manager would drop before sending anything.
func ExampleNotifier_Notify() {
	m := startManager()
	defer m.stop()
	n, err := sdnotify.Open()
	if err != nil {
		log.Fatal(err)
	}
	defer n.Close()

	if err := n.Notify("STATUS=serving 12 clients", "X_GENERATION=7"); err != nil {
		log.Fatal(err)
	}
	m.receive()

	err = n.Notify("status=lower-case key")
	fmt.Println(err)
	fmt.Println(errors.Is(err, syscall.EINVAL))
	// Output:
	// "STATUS=serving 12 clients\nX_GENERATION=7"
	// sdnotify: state 0 "status=lower-case key": byte 0x73 at offset 0 of the key is not allowed (only A-Z, 0-9 and _): invalid argument
	// true
}

// StoreFiles hands files to the manager, which gives them back to the next
// instance of the service in $LISTEN_FDS with their name in $LISTEN_FDNAMES
// (see package activation). The name must pass ValidFDName.
func ExampleNotifier_StoreFiles() {
	m := startManager()
	defer m.stop()
	n, err := sdnotify.Open()
	if err != nil {
		log.Fatal(err)
	}
	defer n.Close()

	// A listening socket kept across restarts: no connection is refused
	// while the service restarts.
	l, err := net.Listen("unix", "@luo-sdnotify-example-control/"+strconv.Itoa(os.Getpid()))
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	f, err := l.(*net.UnixListener).File() // a duplicate of the socket's fd
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	// By default the manager drops a stored fd that reports POLLHUP or
	// POLLERR; a listening socket does not.
	if err := n.StoreFiles("control", []*os.File{f}, nil); err != nil {
		log.Fatal(err)
	}
	m.receive()

	// Unlike systemd, StoreFiles refuses the empty name.
	err = n.StoreFiles("", []*os.File{f}, nil)
	fmt.Println(err)
	// Output:
	// "FDSTORE=1\nFDNAME=control" + socket
	// sdnotify: empty fd name: systemd accepts it, but it breaks LISTEN_FDNAMES for the next instance; choose a name: invalid argument
}

// RemoveFiles empties the fd store of every entry of one name, for example
// state the service no longer wants back after a restart.
func ExampleNotifier_RemoveFiles() {
	m := startManager()
	defer m.stop()
	n, err := sdnotify.Open()
	if err != nil {
		log.Fatal(err)
	}
	defer n.Close()

	if err := n.RemoveFiles("state"); err != nil {
		log.Fatal(err)
	}
	m.receive()
	// Output:
	// "FDSTOREREMOVE=1\nFDNAME=state"
}

// Barrier makes sure the manager has processed earlier notifications, for
// example before a helper process that sent them exits. A manager that does
// not implement barriers never answers: always set a deadline.
func ExampleNotifier_Barrier() {
	m := startManager()
	defer m.stop()
	done := m.receiveInBackground(2) // the manager runs concurrently

	n, err := sdnotify.Open()
	if err != nil {
		log.Fatal(err)
	}
	defer n.Close()
	if err := n.Status("flushing"); err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.Barrier(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("the manager has seen the status")
	<-done
	// Output:
	// "STATUS=flushing"
	// "BARRIER=1" + pipe
	// the manager has seen the status
}

func ExampleValidFDName() {
	for _, name := range []string{"state", "cache v2", "cache:v2", "caf\u00e9"} {
		fmt.Println(sdnotify.ValidFDName(name))
	}
	// Output:
	// <nil>
	// <nil>
	// sdnotify: fd name "cache:v2": ':' at offset 5 is not allowed (it separates names in LISTEN_FDNAMES): invalid argument
	// sdnotify: fd name "café": byte 0xc3 at offset 3 is not allowed (only printable ASCII 0x20-0x7e): invalid argument
}

// manager stands in for the service manager (systemd, luod) in the
// examples: it owns a notification socket and prints each notification it
// receives, quoted, followed by the kind of each file that came with it.
type manager struct {
	conn    *net.UnixConn
	restore func()
}

// startManager binds a notification socket in the abstract namespace and
// points $NOTIFY_SOCKET at it, as a manager does in the environment of the
// service it starts. stop puts the environment back.
func startManager() *manager {
	addr := "@luo-sdnotify-example/" + strconv.Itoa(os.Getpid())
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		log.Fatal(err)
	}
	restore := unsetNotifySocket()
	os.Setenv("NOTIFY_SOCKET", addr)
	return &manager{conn: conn, restore: restore}
}

func (m *manager) stop() {
	m.conn.Close()
	m.restore()
}

// unsetNotifySocket unsets $NOTIFY_SOCKET and returns a function that
// restores it.
func unsetNotifySocket() (restore func()) {
	old, ok := os.LookupEnv("NOTIFY_SOCKET")
	os.Unsetenv("NOTIFY_SOCKET")
	return func() {
		if ok {
			os.Setenv("NOTIFY_SOCKET", old)
		} else {
			os.Unsetenv("NOTIFY_SOCKET")
		}
	}
}

// receive prints the next notification, then closes the files it carries,
// as a manager does with files it does not keep. A notification is queued
// on the socket by the time the send returns.
func (m *manager) receive() {
	buf := make([]byte, sdnotify.MaxMessageSize)
	oob := make([]byte, syscall.CmsgSpace(4*sdnotify.MaxFiles)+syscall.CmsgSpace(syscall.SizeofUcred))
	if err := m.conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		log.Fatal(err)
	}
	n, oobn, _, _, err := m.conn.ReadMsgUnix(buf, oob)
	if err != nil {
		log.Fatal(err)
	}
	line := strconv.Quote(string(buf[:n]))
	msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		log.Fatal(err)
	}
	var received []int
	for _, msg := range msgs {
		if msg.Header.Level != syscall.SOL_SOCKET || msg.Header.Type != syscall.SCM_RIGHTS {
			continue
		}
		fds, err := syscall.ParseUnixRights(&msg)
		if err != nil {
			log.Fatal(err)
		}
		for _, fd := range fds {
			line += " + " + fileKind(fd)
		}
		received = append(received, fds...)
	}
	fmt.Println(line)
	// Only now: closing a barrier's pipe lets the sender go on.
	for _, fd := range received {
		syscall.Close(fd)
	}
}

// receiveInBackground receives count notifications in a new goroutine and
// closes the returned channel when it is done.
func (m *manager) receiveInBackground(count int) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range count {
			m.receive()
		}
	}()
	return done
}

// fileKind describes a received fd by its /proc link: "/memfd:state" for a
// memfd, "pipe" for a pipe.
func fileKind(fd int) string {
	link, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return err.Error()
	}
	link = strings.TrimSuffix(link, " (deleted)")
	if kind, _, ok := strings.Cut(link, ":["); ok {
		return kind // pipe:[1234], socket:[5678]
	}
	return link
}
