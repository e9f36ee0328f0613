// Command counter is the example service of package keep: a counter and a
// block of data in a memory region that survives service restarts and
// kernel live updates, verified by checksum on every start.
//
// The region holds a header (magic, generation, live updates seen, SHA-256
// of the payload) and a payload. Each start checks the checksum, bumps the
// generation and rewrites part of the payload, then reports
//
//	STATUS=generation=3 origin=luo verified=ok live_updates=2 mode=...
//
// to the service manager and on stdout, sends READY=1 and waits for
// SIGTERM. Run it under luod or systemd with FileDescriptorStoreMax=4 and
// FileDescriptorStorePreserve=yes (fd-store mode), or add -session NAME
// (and LUOSession=NAME, or run it as root) for session mode.
package main

import (
	"crypto/sha256"
	"encoding/binary"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/liveupdate/luo/keep"
)

const (
	magic      = "LUOCNTR1"
	headerSize = 64 // magic 8, generation 8, live updates 8, reserved 8, sha256 32
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "counter:", err)
		os.Exit(1)
	}
}

func run() error {
	size := flag.Int64("size", 1<<20, "region size in bytes")
	name := flag.String("region", "counter", "region name")
	session := flag.String("session", "", "session mode: the fd name of the LUO session (LUOSession= name)")
	holdSocket := flag.Bool("hold-socket", false, "also store a socket in the fd store (it cannot survive a kexec)")
	verbose := flag.Bool("v", false, "log what keep decides")
	flag.Parse()

	cfg := &keep.Config{Session: *session}
	if *verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stdout, nil))
	}
	st, err := keep.Open(cfg)
	if err != nil {
		return err
	}
	r, err := st.Region(*name, *size)
	if err != nil {
		return err
	}
	b, err := r.Bytes()
	if err != nil {
		return err
	}
	verified := "fresh"
	if r.Origin == keep.Fresh {
		initRegion(b)
	} else if err := check(b); err != nil {
		verified = "BAD(" + err.Error() + ")"
	} else {
		verified = "ok"
	}
	gen := binary.LittleEndian.Uint64(b[8:]) + 1
	binary.LittleEndian.PutUint64(b[8:], gen)
	binary.LittleEndian.PutUint64(b[16:], uint64(st.LiveUpdates()))
	// Touch the payload so every generation has different contents.
	binary.LittleEndian.PutUint64(b[headerSize:], gen)
	seal(b)

	if *holdSocket && st.Notifier() != nil && st.File("socket") == nil {
		// A listening socket, as a socket-activated service would keep: it
		// survives restarts in the fd store, not a kexec.
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: "@counter-" + *name, Net: "unix"})
		if err != nil {
			return err
		}
		f, err := l.File()
		if err != nil {
			return err
		}
		if err := st.Keep("socket", f, nil); err != nil {
			return err
		}
		l.Close()
	}

	status := fmt.Sprintf("generation=%d origin=%s verified=%s live_updates=%d size=%d mode=%s",
		gen, r.Origin, verified, st.LiveUpdates(), *size, st.Mode())
	if name := st.SessionName(); name != "" {
		status += " session=" + name
	}
	fmt.Println("counter:", status)
	n := st.Notifier()
	n.Status(status)
	n.Ready()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	n.Stopping()
	return st.Close()
}

// initRegion fills a fresh region: the header and a pseudo-random payload.
func initRegion(b []byte) {
	copy(b, magic)
	rng := rand.NewChaCha8([32]byte{'l', 'u', 'o'})
	rng.Read(b[headerSize:])
	seal(b)
}

// seal records the payload's checksum in the header.
func seal(b []byte) {
	sum := sha256.Sum256(b[headerSize:])
	copy(b[32:64], sum[:])
}

// check verifies the magic and the payload checksum.
func check(b []byte) error {
	if string(b[:8]) != magic {
		return fmt.Errorf("no magic")
	}
	sum := sha256.Sum256(b[headerSize:])
	if string(sum[:]) != string(b[32:64]) {
		return fmt.Errorf("checksum mismatch")
	}
	return nil
}
