// Package etcdtest starts a real, single-member etcd server for tests.
//
// Only test code imports it. The server binary is $LUO_ETCD when set, else
// /usr/bin/etcd, else etcd from PATH (Debian: apt-get install etcd-server).
// Without one, Start skips the test, or fails it when the environment
// variable CI is set: in CI a missing etcd is a defect, never a skip.
package etcdtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/logutil"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
)

const (
	readyTimeout = 20 * time.Second // how long Start and Restart wait for a Get to succeed
	stopTimeout  = 5 * time.Second  // how long Stop waits after SIGTERM before SIGKILL
	startTries   = 3                // Start's tries, each on new ports, when a port got taken
)

// Server is one etcd server started by Start. It is stopped, and its data
// removed, when the test that started it ends.
type Server struct {
	// Endpoint is the client address, "127.0.0.1:PORT".
	Endpoint string
	// Version is the server's version, from the client's Status call
	// when the server came up (for example "3.4.23").
	Version string

	// TLS, for a server StartTLS started, are the PEM files of its CA and
	// of a client certificate the server accepts.
	TLS *TLSFiles

	bin     string // the etcd binary
	dir     string // the test's temporary directory: data, logs
	peerURL string // "http://127.0.0.1:PORT" of the peer listener
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has been waited for
}

// Start starts etcd on free ports of 127.0.0.1 with its data in
// t.TempDir(), and returns once a client Get succeeds. The server is stopped
// at the end of the test. On failure it calls t.Fatal with the tail of
// etcd's log.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t, false)
}

// StartTLS is Start with a server that speaks TLS only and wants a client
// certificate signed by its CA (see Server.TLS).
func StartTLS(t testing.TB) *Server {
	t.Helper()
	return start(t, true)
}

func start(t testing.TB, withTLS bool) *Server {
	t.Helper()
	bin := findEtcd(t)
	s := &Server{bin: bin, dir: t.TempDir()}
	if withTLS {
		files, err := makeTLS(s.dir)
		if err != nil {
			t.Fatalf("etcdtest: certificates: %v", err)
		}
		s.TLS = files
	}
	t.Cleanup(func() { s.stop() })
	var err error
	for try := 1; try <= startTries; try++ {
		ports, perr := freePorts(2)
		if perr != nil {
			t.Fatalf("etcdtest: %v", perr)
		}
		s.Endpoint = "127.0.0.1:" + strconv.Itoa(ports[0])
		s.peerURL = "http://127.0.0.1:" + strconv.Itoa(ports[1])
		if err = s.start(); err == nil {
			return s
		}
		// Another process took a port between freePorts and etcd's
		// listen: try again on other ports.
		if !strings.Contains(s.logTail(), "address already in use") {
			break
		}
		// The data dir of a failed first start may hold a half-made
		// member: start afresh, with a new log.
		for _, p := range []string{s.dataDir(), s.logPath()} {
			if rerr := os.RemoveAll(p); rerr != nil {
				t.Fatalf("etcdtest: %v", rerr)
			}
		}
	}
	t.Fatalf("etcdtest: start %s: %v\n--- tail of %s:\n%s", bin, err, s.logPath(), s.logTail())
	return nil
}

// URL returns the client URL, "http://127.0.0.1:PORT" (https with TLS).
func (s *Server) URL() string {
	if s.TLS != nil {
		return "https://" + s.Endpoint
	}
	return "http://" + s.Endpoint
}

// Client returns a new client of the server, closed at the end of the test.
// It may be made while the server is stopped: its calls then fail, or wait
// until it is back. The client's own log goes to client.log beside etcd's.
func (s *Server) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	c, err := s.newClient()
	if err != nil {
		t.Fatalf("etcdtest: client of %s: %v", s.Endpoint, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Stop stops the server (SIGTERM, then SIGKILL after 5 s) and waits for it
// to exit. Its data and ports are kept for Restart. Stopping a stopped
// server does nothing.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if err := s.stop(); err != nil {
		t.Logf("etcdtest: %v", err)
	}
}

// Restart starts the server again, stopping it first if it runs, on the same
// ports and data, and returns once a client Get succeeds.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop(t)
	if err := s.start(); err != nil {
		t.Fatalf("etcdtest: restart %s: %v\n--- tail of %s:\n%s", s.bin, err, s.logPath(), s.logTail())
	}
}

// findEtcd returns the etcd binary, or skips (fails in CI) the test when
// there is none.
func findEtcd(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv("LUO_ETCD"); bin != "" {
		p, err := exec.LookPath(bin)
		if err != nil {
			t.Fatalf("etcdtest: LUO_ETCD=%s: %v", bin, err)
		}
		return p
	}
	if p, err := exec.LookPath("/usr/bin/etcd"); err == nil {
		return p
	}
	if p, err := exec.LookPath("etcd"); err == nil {
		return p
	}
	if _, ci := os.LookupEnv("CI"); ci {
		t.Fatal("etcdtest: no etcd binary (neither /usr/bin/etcd nor etcd in PATH; LUO_ETCD unset): CI must install etcd-server")
	}
	t.Skip("etcdtest: no etcd binary: install it (apt-get install etcd-server) or name one in LUO_ETCD")
	return ""
}

// freePorts returns n distinct ports of 127.0.0.1 that were free a moment
// ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }
func (s *Server) logPath() string { return filepath.Join(s.dir, "etcd.log") }

// start runs etcd on s's ports and data dir and waits until it serves a Get,
// or kills it.
func (s *Server) start() error {
	const name = "etcdtest"
	log, err := os.OpenFile(s.logPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close() // etcd has its own copy
	cmd := exec.Command(s.bin,
		"--name", name,
		"--data-dir", s.dataDir(),
		"--listen-client-urls", s.URL(),
		"--advertise-client-urls", s.URL(),
		"--listen-peer-urls", s.peerURL,
		"--initial-advertise-peer-urls", s.peerURL,
		"--initial-cluster", name+"="+s.peerURL,
		"--initial-cluster-state", "new",
		"--logger", "zap",
		"--log-outputs", "stderr",
	)
	if f := s.TLS; f != nil {
		cmd.Args = append(cmd.Args, "--cert-file", f.serverCert, "--key-file", f.serverKey,
			"--trusted-ca-file", f.CA, "--client-cert-auth")
	}
	// ETCD_* variables would configure etcd too: leave only the flags.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	s.cmd, s.exited = cmd, exited

	if err := s.waitReady(); err != nil {
		s.stop()
		return err
	}
	return nil
}

// waitReady waits until a Get succeeds, then records the server's version.
func (s *Server) waitReady() error {
	c, err := s.newClient()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	exited := s.exited
	go func() { // an etcd that exits ends the wait at once
		select {
		case <-exited:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		try, cancelTry := context.WithTimeout(ctx, time.Second)
		_, err = c.Get(try, "etcdtest-ready")
		cancelTry()
		if err == nil {
			break
		}
		select {
		case <-exited:
			return fmt.Errorf("etcd exited: %v", s.cmd.ProcessState)
		default:
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready after %v: %w", readyTimeout, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	st, err := c.Status(ctx, s.Endpoint)
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	s.Version = st.Version
	return nil
}

// newClient makes a client whose log goes to client.log in s's directory,
// out of the test's output.
func (s *Server) newClient() (*clientv3.Client, error) {
	lc := logutil.DefaultZapLoggerConfig
	lc.OutputPaths = []string{filepath.Join(s.dir, "client.log")}
	lc.ErrorOutputPaths = lc.OutputPaths
	cfg := clientv3.Config{
		Endpoints:   []string{s.URL()},
		DialTimeout: 5 * time.Second,
		LogConfig:   &lc,
	}
	if f := s.TLS; f != nil {
		tc, err := (transport.TLSInfo{TrustedCAFile: f.CA, CertFile: f.Cert, KeyFile: f.Key}).ClientConfig()
		if err != nil {
			return nil, err
		}
		cfg.TLS = tc
	}
	return clientv3.New(cfg)
}

// stop ends the running etcd, if any: SIGTERM, then SIGKILL after
// stopTimeout.
func (s *Server) stop() error {
	if s.cmd == nil {
		return nil
	}
	defer func() { s.cmd = nil }()
	select {
	case <-s.exited:
		return nil
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		return nil
	case <-time.After(stopTimeout):
	}
	s.cmd.Process.Kill()
	<-s.exited
	return errors.New("etcd ignored SIGTERM for 5 s: killed")
}

// logTail returns the end of etcd's log.
func (s *Server) logTail() string {
	b, err := os.ReadFile(s.logPath())
	if err != nil {
		return err.Error()
	}
	const max = 4 << 10
	if len(b) > max {
		b = b[len(b)-max:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}
