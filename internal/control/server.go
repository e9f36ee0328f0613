package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/liveupdate/luo/internal/version"
)

// Timeouts of the server side of a connection.
const (
	// writeTimeout bounds one reply write: a client that stops reading
	// must not stall luod (an update streams progress to it).
	writeTimeout = 10 * time.Second
	// rejectTimeout is how long a refused peer has to send its first call
	// before it is disconnected without a reply.
	rejectTimeout = 5 * time.Second
)

// rootOnlyMessage is the message of the PermissionDenied reply to a peer
// that is neither root nor luod's own user.
const rootOnlyMessage = "luod's control socket is root-only"

// A Handler answers the calls of io.luo.Manager. The Server calls it once
// per call, in the order the calls arrive on a connection; calls on
// different connections run concurrently, so a Handler must be safe for
// concurrent use.
//
// The Handler answers through call: [Call.Params] decodes the parameters,
// then one [Call.Reply] or [Call.ReplyError] ends the call, after any
// number of [Call.ReplyMore] when [Call.WantsMore]. The Handler must not
// use call after it returns. If it returns without a final reply, the
// Server replies org.varlink.service.MethodNotImplemented; if it panics,
// the Server logs the panic, replies io.luo.Manager.InternalError and
// closes the connection.
//
// ctx is cancelled when the Server closes and, except for oneway calls,
// when the client hangs up or the connection breaks (a reply could not be
// written in time). Calls the client sent before it hung up still run,
// with ctx cancelled. Work that must finish regardless (an update) should
// run under context.WithoutCancel(ctx).
type Handler func(ctx context.Context, call *Call)

// Ucred are a peer's credentials, taken with SO_PEERCRED when it
// connected.
type Ucred struct {
	PID int
	UID uint32
	GID uint32
}

// Call is one method call received by a [Server]. Its methods are safe for
// concurrent use, but it is valid only until the [Handler] returns.
type Call struct {
	method string // short name
	params json.RawMessage
	more   bool
	oneway bool
	peer   Ucred
	conn   *serverConn

	mu       sync.Mutex
	done     bool // the final reply was sent (or the call is oneway and was answered)
	finished bool // the handler returned
}

// Method returns the called method's name without the interface, such as
// "GetUnit".
func (c *Call) Method() string { return c.method }

// WantsMore reports whether the client called with "more": it accepts
// several replies, sent with [Call.ReplyMore], before the final one.
func (c *Call) WantsMore() bool { return c.more }

// Oneway reports whether the client called with "oneway": it wants no
// reply, and the reply methods send nothing.
func (c *Call) Oneway() bool { return c.oneway }

// Peer returns the credentials of the process that connected.
func (c *Call) Peer() Ucred { return c.peer }

// Params decodes the call's parameters into v, a pointer to a struct.
// Decoding is strict: an unknown field, a value of the wrong type, or a
// missing field that is not optional (one without omitempty or omitzero
// that is not a pointer, slice or map) is an error. On error Params has
// already replied org.varlink.service.InvalidParameter naming the
// parameter, and the handler should just return.
func (c *Call) Params(v any) error {
	name, err := decodeParams(c.params, v)
	if err != nil {
		if rerr := c.ReplyError(VarlinkInvalidParameter, map[string]string{"parameter": name}); rerr != nil {
			return errors.Join(err, rerr)
		}
		return err
	}
	return nil
}

// Reply sends the final reply, with v (nil or a struct or map encoding to
// a JSON object) as its parameters.
func (c *Call) Reply(v any) error { return c.send(v, false, "") }

// ReplyMore sends a reply that is not the last one. The client must have
// called with "more"; if it did not, ReplyMore replies
// org.varlink.service.ExpectedMore instead, which ends the call, and
// returns an error.
func (c *Call) ReplyMore(v any) error {
	if !c.more {
		if err := c.ReplyError(VarlinkExpectedMore, nil); err != nil {
			return err
		}
		return fmt.Errorf("reply to %s: the client did not call with more", c.method)
	}
	return c.send(v, true, "")
}

// ReplyError sends an error reply, which ends the call. name is an error
// of io.luo.Manager without the interface (such as [ErrNoSuchUnit]) or a
// fully qualified name (such as [VarlinkInvalidParameter]); params (nil, or
// encoding to a JSON object) describe the error.
func (c *Call) ReplyError(name string, params any) error {
	return c.send(params, false, qualify(name))
}

// errCallDone is returned when replying to a call that already ended.
var errCallDone = errors.New("call already answered")

func (c *Call) send(v any, continues bool, errName string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.finished {
		return fmt.Errorf("reply to %s: handler already returned", c.method)
	}
	if c.done {
		return fmt.Errorf("reply to %s: %w", c.method, errCallDone)
	}
	msg, err := encodeReply(v, continues, errName)
	if err != nil {
		return fmt.Errorf("reply to %s: %w", c.method, err)
	}
	if !continues {
		c.done = true
	}
	if c.oneway {
		return nil
	}
	if err := c.conn.write(msg); err != nil {
		return fmt.Errorf("reply to %s: %w", c.method, err)
	}
	return nil
}

// finish marks the call as ended after its handler returned, and sends
// fallback, a final error reply, if the handler did not answer.
func (c *Call) finish(fallback string, params any) {
	c.mu.Lock()
	done := c.done
	c.mu.Unlock()
	if !done {
		_ = c.send(params, false, fallback) // the write error, if any, breaks the connection
	}
	c.mu.Lock()
	c.finished = true
	c.mu.Unlock()
}

// Server serves io.luo.Manager on a unix socket. Its methods are safe for
// concurrent use.
//
// It speaks the Varlink wire format: each message is a JSON object
// terminated by a NUL byte, calls on one connection are answered in order,
// and besides io.luo.Manager it implements org.varlink.service (GetInfo
// and GetInterfaceDescription), so `varlinkctl introspect` and
// `varlinkctl call` work. Only root and the user luod runs as may connect
// (SO_PEERCRED); others get org.varlink.service.PermissionDenied to their
// first call and are disconnected. A message over [MaxMessageSize] or that
// is not a valid call gets an io.luo.Manager.ProtocolError reply, then the
// connection is closed.
type Server struct {
	ln      *net.UnixListener
	handler Handler
	logf    func(string, ...any)
	euid    uint32

	writeTimeout  time.Duration // writeTimeout, or shorter in tests
	rejectTimeout time.Duration // rejectTimeout, or shorter in tests

	mu        sync.Mutex
	version   string
	path      string // socket file to remove on Close; "" when not ours
	closed    bool
	conns     map[*net.UnixConn]struct{}
	wg        sync.WaitGroup // connection goroutines
	closeDone chan struct{}  // closed by Close
}

// Listen creates the socket at path and returns a Server for it. It makes
// path's directory (mode 0755) if needed, removes a stale socket left at
// path (but fails if a server answers on it, or if path is not a socket),
// binds, makes the socket mode 0600 and listens. Linux only. logf, if not
// nil, receives the server's log lines.
func Listen(path string, h Handler, logf func(string, ...any)) (*Server, error) {
	if h == nil {
		return nil, errors.New("control.Listen: nil handler")
	}
	ln, err := listenUnix(path)
	if err != nil {
		return nil, err
	}
	s := newServer(ln, h, logf)
	s.path = path
	return s, nil
}

// FromListener returns a Server for an already listening socket, such as
// one inherited across luod's re-exec. The Server owns l from now on. The
// socket file is not removed on Close.
func FromListener(l *net.UnixListener, h Handler, logf func(string, ...any)) (*Server, error) {
	if l == nil || h == nil {
		return nil, errors.New("control.FromListener: nil listener or handler")
	}
	l.SetUnlinkOnClose(false)
	return newServer(l, h, logf), nil
}

func newServer(ln *net.UnixListener, h Handler, logf func(string, ...any)) *Server {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return &Server{
		ln:            ln,
		handler:       h,
		logf:          logf,
		euid:          uint32(os.Geteuid()),
		writeTimeout:  writeTimeout,
		rejectTimeout: rejectTimeout,
		version:       version.String(),
		conns:         make(map[*net.UnixConn]struct{}),
		closeDone:     make(chan struct{}),
	}
}

// SetVersion sets the version reported by org.varlink.service.GetInfo; the
// default is the build's (package version).
func (s *Server) SetVersion(v string) {
	s.mu.Lock()
	s.version = v
	s.mu.Unlock()
}

// Addr returns the socket's address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// File returns a duplicate of the listening socket, to hand to a re-executed
// luod (which adopts it with net.FileListener and [FromListener]). The
// caller owns the file. After File, Close no longer removes the socket
// file, so that the next luod keeps it.
func (s *Server) File() (*os.File, error) {
	s.mu.Lock()
	s.path = ""
	s.mu.Unlock()
	s.ln.SetUnlinkOnClose(false)
	f, err := s.ln.File()
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return f, nil
}

// Serve accepts connections until Close is called or ctx is done, serving
// each on its own goroutine. Before returning it closes the Server and
// waits for every connection to end. It returns nil after Close or when ctx
// is done, and otherwise the error that stopped it. Call it once.
func (s *Server) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = s.Close() })
	defer stop()
	go func() {
		select {
		case <-s.closeDone:
			cancel()
		case <-ctx.Done():
		}
	}()

	var err error
	backoff := 5 * time.Millisecond
	for {
		var nc *net.UnixConn
		nc, err = s.ln.AcceptUnix()
		if err != nil {
			if s.isClosed() {
				err = nil
				break
			}
			if temporary(err) {
				s.logf("control: accept: %v; retrying in %v", err, backoff)
				select {
				case <-time.After(backoff):
				case <-ctx.Done():
				}
				backoff = min(2*backoff, time.Second)
				continue
			}
			err = fmt.Errorf("control: accept: %w", err)
			break
		}
		backoff = 5 * time.Millisecond
		if !s.track(nc) {
			break
		}
		go s.serveConn(ctx, nc)
	}
	_ = s.Close()
	cancel()
	s.wg.Wait()
	return err
}

// temporary reports whether an accept error is worth retrying.
func temporary(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// track registers a connection; it is closed at once when the Server is
// closed.
func (s *Server) track(nc *net.UnixConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		nc.Close()
		return false
	}
	s.conns[nc] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(nc *net.UnixConn) {
	s.mu.Lock()
	delete(s.conns, nc)
	s.mu.Unlock()
	nc.Close()
	s.wg.Done()
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close stops accepting, closes every connection (cancelling the contexts
// of running handlers) and, if Listen created the socket and File was not
// called, removes the socket file. It does not wait for handlers to return;
// Serve does. A second Close returns nil.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closeDone)
	for nc := range s.conns {
		nc.Close()
	}
	path := s.path
	s.mu.Unlock()

	s.ln.SetUnlinkOnClose(false)
	err := s.ln.Close()
	if path != "" {
		if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
	}
	if err != nil {
		return fmt.Errorf("close control socket: %w", err)
	}
	return nil
}

// serverConn is the write side of a connection.
type serverConn struct {
	nc      *net.UnixConn
	timeout time.Duration // of each write

	mu  sync.Mutex
	err error // sticky write error
}

// write sends one message. A failed or timed out write breaks the
// connection: it is closed and every later write fails.
func (c *serverConn) write(msg []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.timeout))
	if _, err := c.nc.Write(msg); err != nil {
		c.err = fmt.Errorf("write: %w", err)
		c.nc.Close()
		return c.err
	}
	return nil
}

func (c *serverConn) broken() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err != nil
}

// readResult is one message read from a connection, or why reading stopped.
type readResult struct {
	data []byte
	err  error
}

// serveConn serves one connection until it ends.
func (s *Server) serveConn(ctx context.Context, nc *net.UnixConn) {
	defer s.untrack(nc)
	peer, err := peerCred(nc)
	if err != nil {
		s.logf("control: %v", err)
		return
	}
	if peer.UID != 0 && peer.UID != s.euid {
		s.reject(nc, peer)
		return
	}

	cctx, cancel := context.WithCancel(ctx)
	msgs := make(chan readResult)
	loopDone := make(chan struct{})
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		readCalls(nc, msgs, loopDone, cancel)
	}()
	defer func() {
		close(loopDone)
		cancel()
		nc.Close()
		<-readerDone
	}()

	sc := &serverConn{nc: nc, timeout: s.writeTimeout}
	for {
		// The reader always hands on the error that stops it, also
		// when Close closes the connection.
		r := <-msgs
		if r.err != nil {
			if errors.Is(r.err, errTooLarge) {
				s.logf("control: pid %d: %v; closing the connection", peer.PID, r.err)
				s.protocolError(sc, r.err)
			}
			return
		}
		m, err := decodeCall(r.data)
		if err != nil {
			s.logf("control: pid %d: %v; closing the connection", peer.PID, err)
			s.protocolError(sc, err)
			return
		}
		hctx := cctx
		if m.Oneway {
			hctx = ctx
		}
		if !s.dispatch(hctx, sc, peer, m) || sc.broken() {
			return
		}
	}
}

// hangupPoll is how often a connection's reader, holding the next call
// while the current one runs, checks whether the client hung up.
const hangupPoll = 100 * time.Millisecond

// readCalls reads messages from nc and hands them one at a time to the
// connection's loop through msgs, until reading fails, which it hands on
// too, or until loopDone is closed. Every message the client sent is
// handed on, also after it hung up, so that its oneway calls run.
//
// When the client hangs up, readCalls cancels the calls' context with
// cancel. Reading shows the hangup; while the loop is busy with a call
// and readCalls holds the next one, it cannot read, so it polls for it.
func readCalls(nc *net.UnixConn, msgs chan<- readResult, loopDone <-chan struct{}, cancel context.CancelFunc) {
	br := bufio.NewReaderSize(nc, 64<<10)
	for {
		data, err := readMessage(br, MaxMessageSize)
		if err != nil && !errors.Is(err, errTooLarge) {
			// The client hung up: end of file, or ECONNRESET when it
			// left replies unread. Or a failed write closed the
			// connection. Either way no reply can reach it.
			cancel()
		}
		r := readResult{data, err}
		select {
		case msgs <- r:
		case <-loopDone:
			return
		default:
			if !handOff(nc, msgs, loopDone, cancel, r) {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// handOff waits for the loop to take r, cancelling the calls' context if
// the client hangs up meanwhile. It returns false if the loop ended.
func handOff(nc *net.UnixConn, msgs chan<- readResult, loopDone <-chan struct{}, cancel context.CancelFunc, r readResult) bool {
	t := time.NewTicker(hangupPoll)
	defer t.Stop()
	tick := t.C
	for {
		select {
		case msgs <- r:
			return true
		case <-loopDone:
			return false
		case <-tick:
			if hungUp(nc) {
				cancel()
				tick = nil
			}
		}
	}
}

// protocolError tells the client why the server is about to hang up.
func (s *Server) protocolError(sc *serverConn, err error) {
	msg, _ := encodeReply(map[string]string{"message": err.Error()}, false, qualify(errProtocol))
	_ = sc.write(msg)
}

// reject answers the first call of a peer that may not connect with
// PermissionDenied.
func (s *Server) reject(nc *net.UnixConn, peer Ucred) {
	s.logf("control: refusing connection from pid %d uid %d: not root", peer.PID, peer.UID)
	_ = nc.SetDeadline(time.Now().Add(s.rejectTimeout))
	// Wait for the first call, so that the client reads the reply rather
	// than fails to send the call, but keep none of it.
	if err := skipMessage(bufio.NewReader(nc), MaxMessageSize); err != nil {
		return
	}
	msg, _ := encodeReply(map[string]string{"message": rootOnlyMessage}, false, VarlinkPermissionDenied)
	_, _ = nc.Write(msg)
}

// dispatch runs one call. It returns false when the connection must be
// closed.
func (s *Server) dispatch(ctx context.Context, sc *serverConn, peer Ucred, m callMessage) bool {
	iface, name := splitMethod(m.Method)
	call := &Call{
		method: name,
		params: m.Parameters,
		more:   m.More,
		oneway: m.Oneway,
		peer:   peer,
		conn:   sc,
	}
	switch {
	case m.Upgrade:
		_ = call.ReplyError(VarlinkInvalidParameter, map[string]string{"parameter": "upgrade"})
	case iface == ServiceInterface:
		s.serviceCall(call)
	case iface != Interface:
		_ = call.ReplyError(VarlinkInterfaceNotFound, map[string]string{"interface": iface})
	case !slices.Contains(managerMethods, name):
		_ = call.ReplyError(VarlinkMethodNotFound, map[string]string{"method": m.Method})
	default:
		if !s.runHandler(ctx, call) {
			return false
		}
		call.finish(VarlinkMethodNotImplemented, map[string]string{"method": m.Method})
		return true
	}
	call.finish(VarlinkMethodNotImplemented, map[string]string{"method": m.Method})
	return true
}

// runHandler calls the handler, turning a panic into an InternalError
// reply. It returns false after a panic.
func (s *Server) runHandler(ctx context.Context, call *Call) (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			s.logf("control: panic in %s handler: %v\n%s", call.method, v, debug.Stack())
			call.finish(qualify(errInternal), map[string]string{"message": fmt.Sprintf("luod failed handling %s: %v", call.method, v)})
			ok = false
		}
	}()
	s.handler(ctx, call)
	return true
}

// Info is the reply of org.varlink.service.GetInfo.
type Info struct {
	Vendor     string   `json:"vendor"`
	Product    string   `json:"product"`
	Version    string   `json:"version"`
	URL        string   `json:"url"`
	Interfaces []string `json:"interfaces"`
}

// serviceCall answers the methods of org.varlink.service.
func (s *Server) serviceCall(call *Call) {
	switch call.method {
	case "GetInfo":
		if call.Params(&struct{}{}) != nil {
			return
		}
		s.mu.Lock()
		version := s.version
		s.mu.Unlock()
		_ = call.Reply(Info{
			Vendor:     "luo",
			Product:    "luod",
			Version:    version,
			URL:        "https://github.com/liveupdate/luo",
			Interfaces: []string{ServiceInterface, Interface},
		})
	case "GetInterfaceDescription":
		var p struct {
			Interface string `json:"interface"`
		}
		if call.Params(&p) != nil {
			return
		}
		switch p.Interface {
		case Interface:
			_ = call.Reply(map[string]string{"description": managerIDL})
		case ServiceInterface:
			_ = call.Reply(map[string]string{"description": serviceIDL})
		default:
			_ = call.ReplyError(VarlinkInterfaceNotFound, map[string]string{"interface": p.Interface})
		}
	default:
		_ = call.ReplyError(VarlinkMethodNotFound, map[string]string{"method": ServiceInterface + "." + call.method})
	}
}

// decodeParams decodes raw (a JSON object, or empty for none) into v
// strictly. On error it returns the name of the offending parameter.
func decodeParams(raw json.RawMessage, v any) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		raw = json.RawMessage("{}")
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return paramName(err), fmt.Errorf("invalid parameters: %w", err)
	}
	if name := missingParam(raw, v); name != "" {
		return name, fmt.Errorf("invalid parameters: missing %q", name)
	}
	return "", nil
}

// paramName extracts the parameter a json decoding error is about.
func paramName(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return te.Field
	}
	if rest, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if name, err := strconv.Unquote(rest); err == nil {
			return name
		}
	}
	return "parameters"
}

// missingParam returns the first required field of the struct v points to
// that raw lacks (or has as null), or "". A field is required unless it
// has omitempty or omitzero or is a pointer, slice, map or interface.
func missingParam(raw json.RawMessage, v any) string {
	t := reflect.TypeOf(v)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return ""
	}
	var present map[string]json.RawMessage
	if json.Unmarshal(raw, &present) != nil {
		return ""
	}
	for i := range t.NumField() {
		name, required := jsonField(t.Field(i))
		if name == "" || !required {
			continue
		}
		if val, ok := present[name]; !ok || string(val) == "null" {
			return name
		}
	}
	return ""
}

// jsonField returns a struct field's JSON name ("" when it is not
// encoded) and whether Varlink treats it as required.
func jsonField(f reflect.StructField) (name string, required bool) {
	if !f.IsExported() || f.Anonymous {
		return "", false
	}
	tag := f.Tag.Get("json")
	if tag == "-" {
		return "", false
	}
	name, opts, _ := strings.Cut(tag, ",")
	if name == "" {
		name = f.Name
	}
	for o := range strings.SplitSeq(opts, ",") {
		if o == "omitempty" || o == "omitzero" {
			return name, false
		}
	}
	switch f.Type.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
		return name, false
	}
	return name, true
}
