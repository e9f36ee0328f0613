package control

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// The Varlink wire format (https://varlink.org/Method-Call): every message
// is one JSON object followed by a NUL byte. A call is
//
//	{"method": "io.luo.Manager.GetUnit", "parameters": {...}, "more": true, "oneway": true}
//
// and a reply is
//
//	{"parameters": {...}, "continues": true, "error": "io.luo.Manager.NoSuchUnit"}
//
// where "continues" is set on all but the last reply of a call with "more",
// and "error" turns the reply into an error whose parameters describe it.

// MaxMessageSize is the largest message the server reads, its terminating
// NUL byte included: 1 MiB. A larger message gets a ProtocolError reply and
// the connection is closed.
const MaxMessageSize = 1 << 20

// maxReplySize is the largest reply a Client reads. Replies are luod's, so
// the limit is only a guard against a runaway peer.
const maxReplySize = 64 << 20

// Varlink's standard interface and its errors, as they appear on the wire.
const (
	// ServiceInterface is the interface every Varlink service implements.
	ServiceInterface = "org.varlink.service"

	VarlinkInterfaceNotFound    = ServiceInterface + ".InterfaceNotFound"    // parameters: {"interface": ...}
	VarlinkMethodNotFound       = ServiceInterface + ".MethodNotFound"       // parameters: {"method": ...}
	VarlinkMethodNotImplemented = ServiceInterface + ".MethodNotImplemented" // parameters: {"method": ...}
	VarlinkInvalidParameter     = ServiceInterface + ".InvalidParameter"     // parameters: {"parameter": ...}
	VarlinkPermissionDenied     = ServiceInterface + ".PermissionDenied"     // luod adds {"message": ...}
	VarlinkExpectedMore         = ServiceInterface + ".ExpectedMore"         // the method needs "more"
)

// Errors of io.luo.Manager that the Server itself sends. They are declared
// in the interface description next to the ones in api.go.
const (
	errProtocol = "ProtocolError" // parameters: {"message": ...}; the connection is closed after it
	errInternal = "InternalError" // parameters: {"message": ...}
)

// managerIDL is the interface description of io.luo.Manager returned by
// org.varlink.service.GetInterfaceDescription.
//
//go:embed io.luo.Manager.varlink
var managerIDL string

// serviceIDL is the interface description of org.varlink.service.
//
//go:embed org.varlink.service.varlink
var serviceIDL string

// managerMethods are the methods of io.luo.Manager, as declared in
// managerIDL (a test keeps the two in step).
var managerMethods = []string{
	MethodGetManager, MethodListUnits, MethodGetUnit, MethodStartUnit,
	MethodStopUnit, MethodRestartUnit, MethodCleanUnit, MethodResetFailed, MethodDumpFDStore,
	MethodReload, MethodReexec, MethodPowerOff, MethodReboot,
	MethodListSessions, MethodPlanUpdate, MethodRunUpdate,
	MethodGetUpdateReport, MethodStageUpdate, MethodGetStagedUpdate,
	MethodUnstageUpdate, MethodGetLogs, MethodGetFleet, MethodReleaseFleet,
}

// callMessage is a call as it travels on the wire.
type callMessage struct {
	Method     string          `json:"method"`
	Parameters json.RawMessage `json:"parameters,omitempty"`
	More       bool            `json:"more,omitempty"`
	Oneway     bool            `json:"oneway,omitempty"`
	Upgrade    bool            `json:"upgrade,omitempty"`
}

// replyMessage is a reply as it travels on the wire.
type replyMessage struct {
	Parameters json.RawMessage `json:"parameters,omitempty"`
	Continues  bool            `json:"continues,omitempty"`
	Error      string          `json:"error,omitempty"`
}

// errTooLarge is returned by readMessage for a message over its limit.
var errTooLarge = errors.New("message too large")

// readMessage reads one NUL-terminated message from r and returns it
// without the NUL. A message longer than limit bytes (NUL included) is an
// error wrapping errTooLarge; the rest of it is left unread. End of input
// before the NUL is io.ErrUnexpectedEOF, except before the first byte,
// which is io.EOF.
func readMessage(r *bufio.Reader, limit int) ([]byte, error) {
	var msg []byte
	for {
		chunk, err := r.ReadSlice(0)
		if len(msg)+len(chunk) > limit {
			return nil, fmt.Errorf("%w: more than %d bytes", errTooLarge, limit)
		}
		msg = append(msg, chunk...)
		switch {
		case err == nil:
			return msg[:len(msg)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(msg) > 0:
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}

// skipMessage reads one message from r like readMessage, with the same
// errors, but keeps none of it: it costs r's buffer only.
func skipMessage(r *bufio.Reader, limit int) error {
	n := 0
	for {
		chunk, err := r.ReadSlice(0)
		if n += len(chunk); n > limit {
			return fmt.Errorf("%w: more than %d bytes", errTooLarge, limit)
		}
		switch {
		case err == nil:
			return nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && n > 0:
			return io.ErrUnexpectedEOF
		default:
			return err
		}
	}
}

// decodeCall parses a call message (without its NUL).
func decodeCall(data []byte) (callMessage, error) {
	var m callMessage
	if !isObject(data) {
		return m, errors.New("message is not a JSON object")
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("malformed call: %w", err)
	}
	if m.Method == "" {
		return m, errors.New(`call without "method"`)
	}
	if iface, name := splitMethod(m.Method); iface == "" || name == "" {
		return m, fmt.Errorf("method %q is not of the form interface.Method", m.Method)
	}
	if len(m.Parameters) > 0 && !isObject(m.Parameters) && string(m.Parameters) != "null" {
		return m, errors.New(`"parameters" is not a JSON object`)
	}
	return m, nil
}

// encodeCall builds a call message, NUL included.
func encodeCall(method string, params any, more bool) ([]byte, error) {
	raw, err := marshalParams(params)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(callMessage{Method: method, Parameters: raw, More: more})
	if err != nil {
		return nil, err
	}
	return append(b, 0), nil
}

// encodeReply builds a reply message, NUL included. errName, when set, is
// the fully qualified error name.
func encodeReply(params any, continues bool, errName string) ([]byte, error) {
	raw, err := marshalParams(params)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(replyMessage{Parameters: raw, Continues: continues, Error: errName})
	if err != nil {
		return nil, err
	}
	return append(b, 0), nil
}

// decodeReply parses a reply message (without its NUL).
func decodeReply(data []byte) (replyMessage, error) {
	var m replyMessage
	if !isObject(data) {
		return m, errors.New("reply is not a JSON object")
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("malformed reply: %w", err)
	}
	if len(m.Parameters) == 0 || string(m.Parameters) == "null" {
		m.Parameters = json.RawMessage("{}")
	}
	if !isObject(m.Parameters) {
		return m, errors.New(`reply "parameters" is not a JSON object`)
	}
	return m, nil
}

// marshalParams encodes the parameters of a message, which must be a JSON
// object; nil (or a nil pointer) is the empty object.
func marshalParams(v any) (json.RawMessage, error) {
	if v == nil {
		return json.RawMessage("{}"), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode parameters: %w", err)
	}
	if string(b) == "null" {
		return json.RawMessage("{}"), nil
	}
	if !isObject(b) {
		return nil, fmt.Errorf("parameters must be a JSON object, not %.20s", b)
	}
	return b, nil
}

// isObject reports whether data, after leading white space, starts a JSON
// object.
func isObject(data []byte) bool {
	data = bytes.TrimLeft(data, " \t\r\n")
	return len(data) > 0 && data[0] == '{'
}

// splitMethod splits a fully qualified method name at its last dot.
func splitMethod(full string) (iface, name string) {
	i := strings.LastIndexByte(full, '.')
	if i < 0 {
		return "", full
	}
	return full[:i], full[i+1:]
}

// qualify returns name qualified with Interface, unless it already
// contains a dot.
func qualify(name string) string {
	if strings.Contains(name, ".") {
		return name
	}
	return Interface + "." + name
}

// shorten strips Interface from a qualified name.
func shorten(name string) string {
	if s, ok := strings.CutPrefix(name, Interface+"."); ok {
		return s
	}
	return name
}
