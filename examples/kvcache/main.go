// Command kvcache is the example service of package luotest: a tiny
// key-value cache whose entries live in a memory region of package keep, so
// they survive its restarts and kernel live updates. Its test,
// kvcache_test.go, proves it across two real kexecs with luotest.
//
// Clients speak one line per connection on a unix socket (-socket):
//
//	SET key value   stores value under key; answers "OK"
//	GET key         answers "VALUE value", or "MISSING"
//
// A key is one word; a value is the rest of the line. The region holds a
// header (magic, length, SHA-256 of the data) and the entries as JSON; every
// SET rewrites it. At each start kvcache checks the checksum and reports
//
//	STATUS=keys=3 origin=luo verified=ok
//
// to the service manager (origin: fresh, fdstore after a restart, luo after a
// live update), then sends READY=1. Run it under luod or systemd with
// Type=notify, FileDescriptorStoreMax=4 and FileDescriptorStorePreserve=yes.
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/liveupdate/luo/keep"
)

const (
	magic      = "KVCACHE1"
	headerSize = 48 // magic 8, data length 8, SHA-256 of the data 32
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "kvcache:", err)
		os.Exit(1)
	}
}

func run() error {
	socket := flag.String("socket", "/run/kvcache.sock", "path of the unix socket to serve")
	size := flag.Int64("size", 1<<20, "region size in bytes")
	flag.Parse()

	st, err := keep.Open(nil)
	if err != nil {
		return err
	}
	r, err := st.Region("entries", *size)
	if err != nil {
		return err
	}
	b, err := r.Bytes()
	if err != nil {
		return err
	}
	c := &cache{region: b, entries: map[string]string{}}
	verified := "fresh"
	if r.Origin != keep.Fresh {
		verified = "ok"
		if err := c.load(); err != nil {
			verified = "BAD(" + err.Error() + ")"
			c.entries = map[string]string{}
		}
	}
	if err := c.save(); err != nil {
		return err
	}

	os.Remove(*socket) // left by the previous run; the socket is not kept
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: *socket, Net: "unix"})
	if err != nil {
		return err
	}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		st.Notifier().Stopping()
		l.Close()
	}()

	status := fmt.Sprintf("keys=%d origin=%s verified=%s", len(c.entries), r.Origin, verified)
	fmt.Println("kvcache:", status)
	n := st.Notifier()
	if err := n.Status(status); err != nil {
		return err
	}
	if err := n.Ready(); err != nil {
		return err
	}
	for {
		conn, err := l.AcceptUnix()
		if errors.Is(err, net.ErrClosed) {
			return nil
		}
		if err != nil {
			return err
		}
		c.serve(conn)
	}
}

// A cache is the entries and the region that keeps them. It is used by one
// goroutine.
type cache struct {
	region  []byte
	entries map[string]string
}

// serve answers one request and closes conn.
func (c *cache) serve(conn *net.UnixConn) {
	defer conn.Close()
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return
	}
	fmt.Fprintln(conn, c.do(strings.TrimSuffix(line, "\n")))
}

// do carries out one request and returns the answer.
func (c *cache) do(req string) string {
	verb, rest, _ := strings.Cut(req, " ")
	switch verb {
	case "SET":
		key, value, ok := strings.Cut(rest, " ")
		if !ok || key == "" {
			return "ERROR usage: SET key value"
		}
		old, had := c.entries[key]
		c.entries[key] = value
		if err := c.save(); err != nil {
			if had {
				c.entries[key] = old
			} else {
				delete(c.entries, key)
			}
			return "ERROR " + err.Error()
		}
		return "OK"
	case "GET":
		if v, ok := c.entries[rest]; ok {
			return "VALUE " + v
		}
		return "MISSING"
	}
	return "ERROR unknown request " + verb
}

// save writes the entries to the region.
func (c *cache) save() error {
	data, err := json.Marshal(c.entries)
	if err != nil {
		return err
	}
	if headerSize+len(data) > len(c.region) {
		return fmt.Errorf("full: %d bytes of entries, the region holds %d", len(data), len(c.region)-headerSize)
	}
	copy(c.region[headerSize:], data)
	sum := sha256.Sum256(data)
	copy(c.region, magic)
	binary.LittleEndian.PutUint64(c.region[8:], uint64(len(data)))
	copy(c.region[16:headerSize], sum[:])
	return nil
}

// load reads the entries from the region and checks them.
func (c *cache) load() error {
	if string(c.region[:8]) != magic {
		return errors.New("no magic")
	}
	n := binary.LittleEndian.Uint64(c.region[8:])
	if n > uint64(len(c.region)-headerSize) {
		return errors.New("bad length")
	}
	data := c.region[headerSize : headerSize+int(n)]
	if sum := sha256.Sum256(data); string(sum[:]) != string(c.region[16:headerSize]) {
		return errors.New("checksum mismatch")
	}
	return json.Unmarshal(data, &c.entries)
}
