package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"time"
)

func main() {
	if len(os.Args) != 2 {
		os.Exit(2)
	}
	addr, err := checkAddr(os.Args[1])
	if err != nil {
		os.Exit(2)
	}
	guest, err := stdio()
	if err != nil {
		os.Exit(1)
	}
	if err := forward(guest, addr); err != nil {
		os.Exit(1)
	}
}

// checkAddr returns addr if it is a TCP address on the host's loopback,
// 127.0.0.1 or ::1, with a port: the only places hostfwd connects to.
func checkAddr(addr string) (string, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return "", err
	}
	if ip := ap.Addr(); ip != netip.MustParseAddr("127.0.0.1") && ip != netip.IPv6Loopback() || ap.Port() == 0 {
		return "", fmt.Errorf("hostfwd: %s is not 127.0.0.1:PORT or [::1]:PORT", addr)
	}
	return ap.String(), nil
}

// A conn is a stream whose write side closes on its own.
type conn interface {
	io.ReadWriteCloser
	CloseWrite() error
}

// stdio returns the guest connection QEMU gave on the standard input and
// output: a socket, or, when run by hand, the two files.
func stdio() (conn, error) {
	c, err := net.FileConn(os.Stdin)
	if err == nil {
		if hc, ok := c.(conn); ok {
			return hc, nil
		}
		c.Close()
		return nil, errors.New("hostfwd: standard input is a socket without a half-close")
	}
	return files{os.Stdin, os.Stdout}, nil
}

// files is a conn made of a file to read and one to write.
type files struct{ r, w *os.File }

func (f files) Read(b []byte) (int, error)  { return f.r.Read(b) }
func (f files) Write(b []byte) (int, error) { return f.w.Write(b) }
func (f files) CloseWrite() error           { return f.w.Close() }
func (f files) Close() error                { return errors.Join(f.r.Close(), f.w.Close()) }

// forward dials addr and copies between it and guest until both directions
// have ended. An EOF in one direction closes the write side of the other
// end; an error in either direction ends both.
func forward(guest conn, addr string) error {
	defer guest.Close()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	host := c.(*net.TCPConn)
	defer host.Close()
	errc := make(chan error, 2)
	pipe := func(dst, src conn) {
		_, err := io.Copy(dst, src)
		if err == nil {
			err = dst.CloseWrite()
		}
		errc <- err
	}
	go pipe(host, guest)
	go pipe(guest, host)
	if err := <-errc; err != nil {
		return err
	}
	return <-errc
}
