package control

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// This file checks JSON values against the types of an interface
// description, as luoctl --json prints them (docs/luoctl-json.md): every
// member of an object is a field of its type, with a value of the field's
// kind; every field that is not optional is there; an optional field
// without a value is left out, never null; times are RFC 3339.

// timeFields are the fields whose strings are times ("Times are RFC 3339
// strings", io.luo.Manager.varlink).
var timeFields = []string{"since", "started", "time", "stopped", "ready"}

// checkJSON returns where the JSON value v (decoded with UseNumber) does not
// match the IDL type t of iface; where names v in the messages.
func (iface *idlInterface) checkJSON(where string, t *idlType, v any) []string {
	var bad []string
	badf := func(format string, args ...any) {
		bad = append(bad, where+": "+fmt.Sprintf(format, args...))
	}
	if v == nil {
		badf("null: an optional field without a value is left out")
		return bad
	}
	kind := t.kind
	if kind == "named" {
		nt := iface.types[t.name]
		if nt == nil {
			badf("undefined type %s", t.name)
			return bad
		}
		t, kind = nt, nt.kind
	}
	switch kind {
	case "bool":
		if _, ok := v.(bool); !ok {
			badf("%s, want a bool", jsonKind(v))
		}
	case "string":
		if _, ok := v.(string); !ok {
			badf("%s, want a string", jsonKind(v))
		}
	case "int", "float":
		n, ok := v.(json.Number)
		switch {
		case !ok:
			badf("%s, want a number", jsonKind(v))
		case kind == "int" && strings.ContainsAny(n.String(), ".eE"):
			badf("%s, want an int", n)
		}
	case "enum":
		if s, ok := v.(string); !ok || !slices.Contains(t.values, s) {
			badf("%v, want one of %v", v, t.values)
		}
	case "object":
		if _, ok := v.(map[string]any); !ok {
			badf("%s, want an object", jsonKind(v))
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			badf("%s, want an array", jsonKind(v))
			break
		}
		for i, e := range a {
			bad = append(bad, iface.checkJSON(fmt.Sprintf("%s[%d]", where, i), t.elem, e)...)
		}
	case "dict":
		m, ok := v.(map[string]any)
		if !ok {
			badf("%s, want an object", jsonKind(v))
			break
		}
		for k, e := range m {
			bad = append(bad, iface.checkJSON(fmt.Sprintf("%s[%q]", where, k), t.elem, e)...)
		}
	case "struct":
		m, ok := v.(map[string]any)
		if !ok {
			badf("%s, want an object", jsonKind(v))
			break
		}
		for k := range m {
			if !slices.ContainsFunc(t.fields, func(f idlField) bool { return f.name == k }) {
				badf("field %q is not in the IDL", k)
			}
		}
		for _, f := range t.fields {
			fv, ok := m[f.name]
			if !ok {
				if !f.typ.optional {
					badf("field %q is missing", f.name)
				}
				continue
			}
			bad = append(bad, iface.checkJSON(where+"."+f.name, f.typ, fv)...)
			if s, ok := fv.(string); ok && slices.Contains(timeFields, f.name) {
				if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
					badf("field %q: %q is not an RFC 3339 time", f.name, s)
				}
			}
		}
	default:
		badf("IDL kind %s", kind)
	}
	return bad
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a bool"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// decodeJSONValue decodes one JSON value, numbers as json.Number.
func decodeJSONValue(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("more than one JSON value")
	}
	return v, nil
}

// checkReply returns where the JSON text data does not match the reply of
// method.
func (iface *idlInterface) checkReply(method string, data []byte) []string {
	m, ok := iface.methods[method]
	if !ok {
		return []string{fmt.Sprintf("no method %s in %s", method, iface.name)}
	}
	v, err := decodeJSONValue(data)
	if err != nil {
		return []string{fmt.Sprintf("%s reply: %v", method, err)}
	}
	return iface.checkJSON(method+" reply", m.out, v)
}

func TestCheckJSON(t *testing.T) {
	t.Parallel()
	iface, err := parseIDL(`interface a.b
type T (s: string, n: ?int, f: ?float, e: ?(x, y), a: ?[]U, d: ?[string]bool, o: ?object, since: ?string)
type U (b: bool)
method M() -> (t: T)`)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		json string
		bad  string // a substring of the first problem; "" for none
	}{
		{`{"t": {"s": "x"}}`, ""},
		{`{"t": {"s": "x", "n": 3, "f": 1.5, "e": "y", "a": [{"b": true}], "d": {"k": false}, "o": {"z": 1}, "since": "2026-08-04T10:00:00.5Z"}}`, ""},
		{`{}`, `field "t" is missing`},
		{`{"t": {"s": "x"}, "u": 1}`, `field "u" is not in the IDL`},
		{`{"t": {"s": 1}}`, "a number, want a string"},
		{`{"t": {"s": "x", "n": null}}`, "null"},
		{`{"t": {"s": "x", "n": 1.5}}`, "want an int"},
		{`{"t": {"s": "x", "e": "z"}}`, "want one of"},
		{`{"t": {"s": "x", "a": [{}]}}`, `M reply.t.a[0]: field "b" is missing`},
		{`{"t": {"s": "x", "a": {}}}`, "want an array"},
		{`{"t": {"s": "x", "d": {"k": 1}}}`, "want a bool"},
		{`{"t": {"s": "x", "since": "3min ago"}}`, "RFC 3339"},
		{`{"t": {"s": "x"}} {}`, "more than one"},
	} {
		bad := iface.checkReply("M", []byte(tt.json))
		switch {
		case tt.bad == "" && len(bad) > 0:
			t.Errorf("%s: %v", tt.json, bad)
		case tt.bad != "" && (len(bad) == 0 || !strings.Contains(bad[0], tt.bad)):
			t.Errorf("%s: %v, want %q", tt.json, bad, tt.bad)
		}
	}
}
