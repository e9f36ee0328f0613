//go:build linux

package luo_test

import (
	"errors"
	"fmt"
	"log"
	"os"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/liveupdate/luo"
	"github.com/liveupdate/luo/activation"
	"github.com/liveupdate/luo/memfd"
	"github.com/liveupdate/luo/sdnotify"
)

// A program that runs at every boot keeps a counter in a memfd across the
// kexec live updates it performs itself. At start it takes the memfd the
// previous kernel carried, or makes a new one on a cold boot; to update, it
// preserves the memfd in an outgoing session, keeps the session open and
// kexecs. It runs as root.
func Example() {
	const name, token = "counter", 1

	// At start: the previous kernel's state, if any.
	dev, err := luo.Open()
	if err != nil {
		log.Fatal(err) // the *luo.Error says why: no LUO in this kernel, not root, ...
	}
	in, err := dev.RetrieveSession(name)
	dev.Close() // the device has a single owner: close it as soon as possible
	var state *os.File
	switch {
	case errors.Is(err, unix.ENOENT): // a cold boot, or nothing was preserved
		state, err = memfd.New(name, 4096) // its final size: preserving freezes it
		if err != nil {
			log.Fatal(err)
		}
	case err != nil:
		log.Fatal(err)
	default:
		state, err = in.RetrieveFD(token) // contents, size and seals restored
		if err != nil {
			log.Fatal(err)
		}
		// Finishing releases the memfd, so that it can be preserved again,
		// and discards whatever was not retrieved.
		if err := in.Finish(); err != nil {
			log.Fatal(err)
		}
		in.Close()
	}
	b, err := memfd.Map(state)
	if err != nil {
		log.Fatal(err)
	}
	b[0]++ // counts the boots since the cold one
	fmt.Println("boot", b[0])

	// ... work, writing the state through b, until it is time to update ...

	// To update: preserve the memfd in an outgoing session (the same name
	// as the finished incoming one is fine). Writes through b still reach
	// the next kernel: what the pages hold at the kexec is what it gets.
	dev, err = luo.Open()
	if err != nil {
		log.Fatal(err)
	}
	out, err := dev.CreateSession(name)
	dev.Close()
	if err != nil {
		log.Fatal(err)
	}
	if err := out.PreserveFD(state, token); err != nil {
		log.Fatal(err)
	}
	// Keep out open until the kexec: closing it unpreserves the memfd.
	// The next kernel is loaded with kexec_file_load (not kexec_load),
	// here with this kernel's command line, which has liveupdate=on.
	kernel, err := os.Open("/boot/vmlinuz-next")
	if err != nil {
		log.Fatal(err)
	}
	initrd, err := os.Open("/boot/initrd.img-next")
	if err != nil {
		log.Fatal(err)
	}
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		log.Fatal(err)
	}
	if err := unix.KexecFileLoad(int(kernel.Fd()), int(initrd.Fd()), strings.TrimSpace(string(cmdline)), 0); err != nil {
		log.Fatal(os.NewSyscallError("kexec_file_load", err))
	}
	unix.Sync()
	err = unix.Reboot(unix.LINUX_REBOOT_CMD_KEXEC) // returns only on failure
	runtime.KeepAlive(out)                         // open and reachable up to the kexec
	log.Fatal(os.NewSyscallError("reboot", err))
}

// Before a live update, a memfd is preserved in a new outgoing session,
// under a token that finds it again in the next kernel.
func ExampleDevice_CreateSession() {
	state, err := memfd.New("cache", 64<<20)
	if err != nil {
		log.Fatal(err)
	}
	defer state.Close() // the session holds its own reference

	dev, err := luo.Open()
	if err != nil {
		log.Fatal(err)
	}
	s, err := dev.CreateSession("cache")
	dev.Close() // sessions stay valid without the device
	if err != nil {
		log.Fatal(err) // EEXIST: an outgoing session of that name exists
	}
	if err := s.PreserveFD(state, 1); err != nil {
		log.Fatal(err)
	}
	fmt.Println("preserved in", s) // outgoing session "cache"

	// The session must stay open until the kexec: closing its last fd
	// unpreserves the memfd. A service hands it to its manager's fd store,
	// which holds it across the kexec (luod; see also package keep).
	n, err := sdnotify.Open()
	if err != nil {
		log.Fatal(err)
	}
	defer n.Close()
	if err := n.StoreFiles("cache", []*os.File{s.File()}, &sdnotify.StoreOptions{NoPoll: true}); err != nil {
		log.Fatal(err)
	}
}

// After a live update, the files come back by session name and token; then
// the session is finished.
func ExampleDevice_RetrieveSession() {
	dev, err := luo.Open()
	if err != nil {
		log.Fatal(err)
	}
	s, err := dev.RetrieveSession("cache")
	dev.Close()
	if errors.Is(err, unix.ENOENT) {
		fmt.Println("nothing carried over: a cold boot")
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close() // an implicit FINISH if Finish was not called

	state, err := s.RetrieveFD(1)
	if err != nil {
		log.Fatal(err) // ENOENT: nothing under this token
	}
	defer state.Close()
	b, err := memfd.Map(state)
	if err != nil {
		log.Fatal(err)
	}
	defer memfd.Unmap(b)
	if err := s.Finish(); err != nil { // every other token is discarded
		log.Fatal(err)
	}
	fmt.Printf("%d bytes of cache carried over\n", len(b))
}

// PreserveFD takes memfds (not hugetlb) and unlinked tmpfs files, each once
// system-wide, and freezes their size: size a memfd before preserving it.
// Its contents stay writable.
func ExampleSession_PreserveFD() {
	dev, err := luo.Open()
	if err != nil {
		log.Fatal(err)
	}
	s, err := dev.CreateSession("journal")
	dev.Close()
	if err != nil {
		log.Fatal(err)
	}

	f, err := memfd.New("journal", 1<<20)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	if err := luo.CheckPreservable(f); err != nil { // no session needed to ask
		log.Fatal(err)
	}
	if err := s.PreserveFD(f, 7); err != nil {
		// For example: luo: PRESERVE_FD session "journal" token 7: file
		// exists (the token is already used in this session)
		log.Fatal(err)
	}

	err = memfd.Resize(f, 2<<20)
	fmt.Println(errors.Is(err, unix.EPERM)) // true: the size is frozen
	if _, err := f.WriteAt([]byte("entry 1"), 0); err != nil {
		log.Fatal(err) // writes within the size are fine
	}
	// Keep s open until the kexec.
}

// An incoming session takes no new files. To carry its files across one more
// live update, retrieve every token, finish it, and preserve the files again
// in a new outgoing session, which may have the same name.
func ExampleSession_Finish() {
	dev, err := luo.Open()
	if err != nil {
		log.Fatal(err)
	}
	in, err := dev.RetrieveSession("cache")
	if err != nil {
		log.Fatal(err)
	}
	defer in.Close()
	out, err := dev.CreateSession("cache") // an incoming session does not count
	if err != nil {
		log.Fatal(err)
	}
	dev.Close()

	tokens := []uint64{1, 2}
	files := make([]*os.File, len(tokens))
	for i, tok := range tokens {
		if files[i], err = in.RetrieveFD(tok); err != nil {
			log.Fatal(err)
		}
		defer files[i].Close()
	}
	// Until Finish, preserving a retrieved file fails with EBUSY.
	if err := in.Finish(); err != nil {
		log.Fatal(err) // EBUSY: a file refused to finish; retry later
	}

	for i, tok := range tokens {
		if err := out.PreserveFD(files[i], tok); err != nil {
			log.Fatal(err)
		}
	}
	// Keep out open until the next kexec.
	fmt.Println(in, "->", out)
}

// A service without root gets its sessions from its manager, through
// $LISTEN_FDS: luod puts an outgoing session in the service's fd store for
// each LUOSession= line of the unit, under that name, and after a live
// update the incoming session of the same name too (systemd 262 hands back
// only the incoming one).
func ExampleSessionFromFile() {
	files, err := activation.Receive(&activation.Config{UnsetEnv: true})
	if err != nil {
		log.Fatal(err)
	}
	for _, f := range files.Named("state") { // LUOSession=state
		s, err := luo.SessionFromFile(f)
		if errors.Is(err, luo.ErrNotSession) {
			f.Close() // something else stored under that name
			continue
		}
		if err != nil {
			log.Fatal(err)
		}
		if s.Incoming() {
			fmt.Println("restoring from", s) // RetrieveFD, then Finish
		} else {
			fmt.Println("preserving into", s) // PreserveFD
		}
	}
}

// A session name is 1 to MaxNameLen bytes without NUL; CreateSession and
// RetrieveSession check it before any syscall.
func ExampleValidateName() {
	for _, name := range []string{"cache", "luod/unit/web.service", "", "nul\x00byte"} {
		err := luo.ValidateName(name)
		fmt.Println(err, errors.Is(err, luo.ErrInvalidName))
	}
	err := luo.ValidateName(string(make([]byte, luo.MaxNameLen+1)))
	var nerr *luo.NameError
	if errors.As(err, &nerr) {
		fmt.Println(nerr.Reason, errors.Is(err, unix.EINVAL))
	}
	// Output:
	// <nil> false
	// <nil> false
	// invalid session name "": empty; the kernel wants 1 to 63 bytes true
	// invalid session name "nul\x00byte": NUL byte at offset 3 true
	// 64 bytes; the kernel allows at most 63 true
}

// Every operation fails with a *luo.Error that keeps the errno, for
// errors.Is, and explains its usual causes for that operation. Here the
// device does not exist, as on a kernel without LUO.
func ExampleError() {
	dir, err := os.MkdirTemp("", "luo-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	_, err = luo.OpenPath(dir + "/liveupdate")
	switch {
	case errors.Is(err, unix.ENOENT):
		fmt.Println("no LUO: state will not survive a kernel update")
	case errors.Is(err, unix.EBUSY):
		fmt.Println("another process has the device open")
	}
	var lerr *luo.Error
	if errors.As(err, &lerr) {
		fmt.Printf("%s: %v\n", lerr.Op, lerr.Err)
		fmt.Println(lerr.Hint())
	}
	// Output:
	// no LUO: state will not survive a kernel update
	// open: no such file or directory
	// no /dev/liveupdate: the kernel lacks CONFIG_LIVEUPDATE, was booted without liveupdate=on, has KHO disabled (kho=off), or devtmpfs is not mounted on /dev
}

// CheckPreservable tells, without a session, whether the kernel would take a
// file in PRESERVE_FD.
func ExampleCheckPreservable() {
	mfd, err := memfd.New("state", 4096)
	if err != nil {
		log.Fatal(err)
	}
	defer mfd.Close()
	r, w, err := os.Pipe()
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	defer w.Close()

	fmt.Println(luo.CheckPreservable(mfd))
	err = luo.CheckPreservable(r)
	fmt.Println(err)
	fmt.Println(errors.Is(err, luo.ErrNotPreservable))
	// Output:
	// <nil>
	// a pipe (only memfds and unlinked tmpfs files are supported): cannot be preserved across a kexec
	// true
}
