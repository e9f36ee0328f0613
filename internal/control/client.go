package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrDisconnected is wrapped by the errors of a [Client] whose connection
// dropped before the reply was complete, as it does when luod reboots into
// a new kernel or re-executes itself.
var ErrDisconnected = errors.New("luod closed the connection")

// DialError is the error of [Dial] when luod's socket cannot be reached.
// Err is the underlying error: errors.Is(err, fs.ErrNotExist) means there
// is no socket, syscall.ECONNREFUSED that nothing listens on it, and
// fs.ErrPermission that the caller may not connect.
type DialError struct {
	Path string
	Err  error
}

// Error says why luod cannot be reached, in words for the operator.
func (e *DialError) Error() string {
	switch {
	case errors.Is(e.Err, fs.ErrNotExist):
		return fmt.Sprintf("luod is not running? no socket at %s", e.Path)
	case errors.Is(e.Err, syscall.ECONNREFUSED):
		return fmt.Sprintf("luod is not running? nothing listens on %s", e.Path)
	case errors.Is(e.Err, fs.ErrPermission):
		return fmt.Sprintf("cannot connect to %s: permission denied (%s)", e.Path, rootOnlyMessage)
	default:
		return fmt.Sprintf("cannot connect to luod at %s: %v", e.Path, e.Err)
	}
}

// Unwrap returns e.Err.
func (e *DialError) Unwrap() error { return e.Err }

// RemoteError is an error reply from luod.
type RemoteError struct {
	// Name is the error's name: without the interface for the errors of
	// io.luo.Manager (such as [ErrNoSuchUnit]), fully qualified for the
	// others (such as [VarlinkMethodNotFound]).
	Name string
	// Params are the error's parameters, a JSON object.
	Params json.RawMessage
}

// Is reports whether target is a *RemoteError with the same Name, so that
// errors.Is(err, &control.RemoteError{Name: control.ErrNoSuchUnit}) works.
func (e *RemoteError) Is(target error) bool {
	t, ok := target.(*RemoteError)
	return ok && shorten(t.Name) == e.Name
}

// Error describes the error in words, from its name and parameters.
func (e *RemoteError) Error() string {
	var p struct {
		Name      string          `json:"name"`
		Message   string          `json:"message"`
		Phase     string          `json:"phase"`
		Restored  bool            `json:"restored"`
		Parameter string          `json:"parameter"`
		Method    string          `json:"method"`
		Interface string          `json:"interface"`
		Unit      json.RawMessage `json:"unit"`
	}
	_ = json.Unmarshal(e.Params, &p) // best effort: the words degrade, the name stays
	withMessage := func(s string) string {
		if p.Message != "" {
			return s + ": " + p.Message
		}
		return s
	}
	switch e.Name {
	case ErrNoSuchUnit:
		return fmt.Sprintf("no such unit %q", p.Name)
	case ErrUnitBusy:
		if p.Name != "" {
			return withMessage(fmt.Sprintf("unit %q is busy", p.Name))
		}
		return withMessage("unit is busy")
	case ErrJobFailed:
		var u Unit
		_ = json.Unmarshal(p.Unit, &u)
		return jobFailedText(u)
	case ErrUpdateFailed:
		s := fmt.Sprintf("update failed in phase %q: %s; ", p.Phase, p.Message)
		if p.Phase == "plan" || p.Phase == "slot" {
			return s + "nothing was changed"
		}
		if p.Restored {
			return s + "every unit was restored with its fd store"
		}
		return s + "units were NOT restored, check 'luoctl status'"
	case ErrUpdateInProgress:
		return withMessage("another update is in progress")
	case ErrNotSupported:
		return withMessage("not supported")
	case ErrNoReport:
		return withMessage("no update report: no live update since the last cold boot")
	case ErrShuttingDown:
		return withMessage("luod is shutting down")
	case ErrFleetUnavailable:
		return withMessage("the fleet is unavailable")
	case ErrNotStaged:
		if p.Message != "" {
			return p.Message
		}
		return "no update is staged"
	case errProtocol:
		return withMessage("luod rejected the message")
	case errInternal:
		return withMessage("internal error in luod")
	case VarlinkMethodNotFound:
		return fmt.Sprintf("luod has no method %q (is luod older than luoctl?)", p.Method)
	case VarlinkMethodNotImplemented:
		return fmt.Sprintf("luod does not implement %q", p.Method)
	case VarlinkInvalidParameter:
		return fmt.Sprintf("invalid parameter %q", p.Parameter)
	case VarlinkInterfaceNotFound:
		return fmt.Sprintf("luod has no interface %q", p.Interface)
	case VarlinkPermissionDenied:
		return withMessage("permission denied")
	case VarlinkExpectedMore:
		return "the method must be called with more"
	}
	if params := strings.TrimSpace(string(e.Params)); params != "" && params != "{}" {
		return fmt.Sprintf("luod replied error %s %s", e.Name, params)
	}
	return fmt.Sprintf("luod replied error %s", e.Name)
}

// jobFailedText describes a JobFailed error from the unit's state.
func jobFailedText(u Unit) string {
	if u.Name == "" {
		return "job failed"
	}
	s := fmt.Sprintf("job for %q failed: unit is %s (%s)", u.Name, u.ActiveState, u.SubState)
	if u.Result != "" && u.Result != "success" {
		s += ", result " + u.Result
	}
	if u.Status != "" {
		s += fmt.Sprintf(", status %q", u.Status)
	}
	return s + fmt.Sprintf("; see 'luoctl status %s'", u.Name)
}

// Client is a connection to luod. Its methods are safe for concurrent use;
// calls are sent one at a time.
type Client struct {
	path string

	mu     sync.Mutex
	conn   *net.UnixConn
	r      *bufio.Reader
	err    error // sticky: the connection is unusable (closed, dropped, or mid-reply)
	closed bool
}

// Dial connects to luod's socket at path. A missing socket or one nothing
// listens on is a [*DialError] saying luod is not running.
func Dial(ctx context.Context, path string) (*Client, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, &DialError{Path: path, Err: err}
	}
	conn, ok := nc.(*net.UnixConn)
	if !ok {
		nc.Close()
		return nil, &DialError{Path: path, Err: errors.New("not a unix socket")}
	}
	return &Client{path: path, conn: conn, r: bufio.NewReaderSize(conn, 64<<10)}, nil
}

// Close closes the connection. A second Close returns nil.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	c.err = net.ErrClosed
	return c.conn.Close()
}

// Call calls method (a method of io.luo.Manager without the interface,
// such as [MethodGetUnit], or a fully qualified name) with params (nil, or
// encoding to a JSON object), and decodes the reply's parameters into
// reply unless it is nil. An error reply is a [*RemoteError]. When ctx
// ends before the reply, the error wraps ctx's error and the Client is
// unusable, since the reply may still come.
func (c *Client) Call(ctx context.Context, method string, params, reply any) error {
	return c.call(ctx, method, params, false, func(raw json.RawMessage) error {
		if reply == nil {
			return nil
		}
		if err := json.Unmarshal(raw, reply); err != nil {
			return fmt.Errorf("%s: decode reply: %w", method, err)
		}
		return nil
	})
}

// CallMore calls method with "more" and calls each with the parameters of
// every reply, in order, until the last one. An error from each stops the
// call and is returned; the Client is then unusable, since more replies
// may come. A connection that drops before the last reply is an error
// wrapping [ErrDisconnected].
func (c *Client) CallMore(ctx context.Context, method string, params any, each func(json.RawMessage) error) error {
	return c.call(ctx, method, params, true, each)
}

// aLongTimeAgo is a deadline in the past, to interrupt blocked I/O.
var aLongTimeAgo = time.Unix(1, 0)

func (c *Client) call(ctx context.Context, method string, params any, more bool, each func(json.RawMessage) error) (err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return fmt.Errorf("%s: %w", method, c.err)
	}
	msg, err := encodeCall(qualify(method), params, more)
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}

	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = c.conn.SetDeadline(aLongTimeAgo)
		close(fired)
	})
	defer func() {
		if !stop() {
			<-fired
		}
		_ = c.conn.SetDeadline(time.Time{})
	}()
	// broken marks the connection unusable and wraps err for the caller.
	broken := func(err error) error {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = ctxErr
		} else if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
			errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
			err = fmt.Errorf("%w: %w", ErrDisconnected, err)
		}
		c.err = err
		return fmt.Errorf("%s: %w", method, err)
	}

	if _, err := c.conn.Write(msg); err != nil {
		return broken(err)
	}
	for {
		data, err := readMessage(c.r, maxReplySize)
		if err != nil {
			return broken(err)
		}
		rep, err := decodeReply(data)
		if err != nil {
			return broken(err)
		}
		if rep.Error != "" {
			if rep.Continues {
				return broken(errors.New("error reply with continues"))
			}
			return &RemoteError{Name: shorten(rep.Error), Params: rep.Parameters}
		}
		if rep.Continues && !more {
			return broken(errors.New("reply with continues to a call without more"))
		}
		if err := each(rep.Parameters); err != nil {
			if rep.Continues {
				c.err = fmt.Errorf("call %s abandoned: %w", method, err)
			}
			return err
		}
		if !rep.Continues {
			return nil
		}
	}
}
