package control

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReadMessage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		in    string
		limit int
		want  []string
		err   error // after the messages
	}{
		{name: "one", in: "{}\x00", limit: 10, want: []string{"{}"}, err: io.EOF},
		{name: "two", in: "{\"a\":1}\x00{}\x00", limit: 10, want: []string{`{"a":1}`, "{}"}, err: io.EOF},
		{name: "empty message", in: "\x00", limit: 10, want: []string{""}, err: io.EOF},
		{name: "nothing", in: "", limit: 10, err: io.EOF},
		{name: "truncated", in: "{}\x00{\"a\"", limit: 10, want: []string{"{}"}, err: io.ErrUnexpectedEOF},
		{name: "at limit", in: "123456789\x00", limit: 10, want: []string{"123456789"}, err: io.EOF},
		{name: "over limit", in: "1234567890\x00", limit: 10, err: errTooLarge},
		{name: "over limit without NUL", in: strings.Repeat("x", 100), limit: 10, err: errTooLarge},
		{name: "over buffer", in: strings.Repeat("x", 5000) + "\x00", limit: 6000, want: []string{strings.Repeat("x", 5000)}, err: io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := bufio.NewReaderSize(strings.NewReader(tt.in), 16)
			var got []string
			var err error
			for {
				var m []byte
				m, err = readMessage(r, tt.limit)
				if err != nil {
					break
				}
				got = append(got, string(m))
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("error = %v, want %v", err, tt.err)
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
				t.Errorf("messages = %q, want %q", got, tt.want)
			}

			// skipMessage sees the same messages and the same end.
			r = bufio.NewReaderSize(strings.NewReader(tt.in), 16)
			skipped := 0
			for err = skipMessage(r, tt.limit); err == nil; err = skipMessage(r, tt.limit) {
				skipped++
			}
			if !errors.Is(err, tt.err) || skipped != len(tt.want) {
				t.Errorf("skipMessage: %d messages, then %v; want %d, then %v", skipped, err, len(tt.want), tt.err)
			}
		})
	}
}

// decodeCallTests are also the seeds of FuzzDecodeCall.
var decodeCallTests = []struct {
	name string
	in   string
	want callMessage
	ok   bool
}{
	{name: "plain", in: `{"method":"io.luo.Manager.GetManager"}`, want: callMessage{Method: "io.luo.Manager.GetManager"}, ok: true},
	{name: "parameters", in: `{"method":"io.luo.Manager.GetUnit","parameters":{"name":"a.service"}}`,
		want: callMessage{Method: "io.luo.Manager.GetUnit", Parameters: json.RawMessage(`{"name":"a.service"}`)}, ok: true},
	{name: "more", in: `{"method":"io.luo.Manager.RunUpdate","parameters":{},"more":true}`,
		want: callMessage{Method: "io.luo.Manager.RunUpdate", Parameters: json.RawMessage(`{}`), More: true}, ok: true},
	{name: "oneway", in: ` {"oneway":true,"method":"io.luo.Manager.Reboot"}`, want: callMessage{Method: "io.luo.Manager.Reboot", Oneway: true}, ok: true},
	{name: "null parameters", in: `{"method":"a.B","parameters":null}`, want: callMessage{Method: "a.B", Parameters: json.RawMessage("null")}, ok: true},
	{name: "unknown envelope field", in: `{"method":"a.B","future":1}`, want: callMessage{Method: "a.B"}, ok: true},
	{name: "not json", in: `hello`},
	{name: "array", in: `[1,2]`},
	{name: "null", in: `null`},
	{name: "empty", in: ``},
	{name: "truncated", in: `{"method":"a.B"`},
	{name: "trailing data", in: `{"method":"a.B"}{}`},
	{name: "no method", in: `{"parameters":{}}`},
	{name: "method not a string", in: `{"method":1}`},
	{name: "method without interface", in: `{"method":"GetManager"}`},
	{name: "method ending in a dot", in: `{"method":"io.luo.Manager."}`},
	{name: "parameters not an object", in: `{"method":"a.B","parameters":[1]}`},
	{name: "parameters a string", in: `{"method":"a.B","parameters":"x"}`},
	{name: "more not a bool", in: `{"method":"a.B","more":"yes"}`},
}

func TestDecodeCall(t *testing.T) {
	t.Parallel()
	for _, tt := range decodeCallTests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := decodeCall([]byte(tt.in))
			if (err == nil) != tt.ok {
				t.Fatalf("decodeCall(%q) error = %v, want ok=%v", tt.in, err, tt.ok)
			}
			if !tt.ok {
				return
			}
			if got.Method != tt.want.Method || got.More != tt.want.More || got.Oneway != tt.want.Oneway ||
				!bytes.Equal(got.Parameters, tt.want.Parameters) {
				t.Errorf("decodeCall(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

// FuzzDecodeCall feeds arbitrary bytes through the server's decoding: the
// NUL framing, the call envelope, and the strict parameter decoding.
func FuzzDecodeCall(f *testing.F) {
	for _, tt := range decodeCallTests {
		f.Add([]byte(tt.in + "\x00"))
	}
	f.Add([]byte(`{"method":"io.luo.Manager.GetUnit","parameters":{"name":"a","no_block":true}}` + "\x00" + `{"method":"a.B"}` + "\x00"))
	f.Add([]byte(`{"method":"io.luo.Manager.CleanUnit","parameters":{"name":"a","what":["fdstore"],"x":1}}` + "\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReaderSize(bytes.NewReader(data), 16)
		for {
			msg, err := readMessage(r, 1<<10)
			if err != nil {
				return
			}
			m, err := decodeCall(msg)
			if err != nil {
				continue
			}
			if iface, name := splitMethod(m.Method); iface == "" || name == "" {
				t.Fatalf("accepted method %q", m.Method)
			}
			// What was accepted encodes and decodes to the same call.
			again, err := encodeCall(m.Method, nil, m.More)
			if err != nil {
				t.Fatal(err)
			}
			m2, err := decodeCall(again[:len(again)-1])
			if err != nil || m2.Method != m.Method || m2.More != m.More {
				t.Fatalf("round trip of %+v: %+v, %v", m, m2, err)
			}
			var p1 CleanParams
			if name, err := decodeParams(m.Parameters, &p1); (err == nil) != (name == "") && !strings.Contains(err.Error(), `unknown field ""`) {
				t.Fatalf("decodeParams = %q, %v: a parameter name goes with an error", name, err)
			}
			var p2 UpdateParams
			_, _ = decodeParams(m.Parameters, &p2)
		}
	})
}

// FuzzDecodeReply feeds arbitrary replies to the client's decoding and
// error formatting.
func FuzzDecodeReply(f *testing.F) {
	for _, s := range []string{
		`{"parameters":{"unit":{"name":"a"}}}`,
		`{"parameters":{},"continues":true}`,
		`{"error":"io.luo.Manager.NoSuchUnit","parameters":{"name":"a.service"}}`,
		`{"error":"io.luo.Manager.UpdateFailed","parameters":{"phase":"stop","message":"x","restored":true}}`,
		`{"error":"io.luo.Manager.JobFailed","parameters":{"unit":{"name":"a","active_state":"failed"}}}`,
		`{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":1}}`,
		`{"error":"x","parameters":[]}`,
		`{}`, `null`, `[]`, `{"parameters":null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeReply(data)
		if err != nil {
			return
		}
		if !isObject(m.Parameters) {
			t.Fatalf("accepted parameters %q", m.Parameters)
		}
		if m.Error != "" {
			e := &RemoteError{Name: shorten(m.Error), Params: m.Parameters}
			if e.Error() == "" {
				t.Fatal("empty error text")
			}
		}
	})
}

func TestMarshalParams(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   any
		want string
		ok   bool
	}{
		{name: "nil", in: nil, want: "{}", ok: true},
		{name: "nil pointer", in: (*UnitName)(nil), want: "{}", ok: true},
		{name: "struct", in: UnitName{Name: "a"}, want: `{"name":"a"}`, ok: true},
		{name: "map", in: map[string]int{"a": 1}, want: `{"a":1}`, ok: true},
		{name: "slice", in: []int{1}},
		{name: "string", in: "x"},
		{name: "unencodable", in: map[string]any{"f": func() {}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := marshalParams(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("marshalParams(%v) error = %v, want ok=%v", tt.in, err, tt.ok)
			}
			if tt.ok && string(got) != tt.want {
				t.Errorf("marshalParams(%v) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestDecodeParams(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		v       any
		badName string // "" when decoding must succeed
	}{
		{name: "ok", in: `{"name":"a","no_block":true}`, v: &UnitName{}},
		{name: "optional missing", in: `{"name":"a"}`, v: &UnitName{}},
		{name: "unknown field", in: `{"name":"a","bogus":1}`, v: &UnitName{}, badName: "bogus"},
		{name: "wrong type", in: `{"name":1}`, v: &UnitName{}, badName: "name"},
		{name: "required missing", in: `{"no_block":true}`, v: &UnitName{}, badName: "name"},
		{name: "required null", in: `{"name":null}`, v: &UnitName{}, badName: "name"},
		{name: "none at all", in: ``, v: &UnitName{}, badName: "name"},
		{name: "none wanted", in: ``, v: &struct{}{}},
		{name: "slice optional", in: `{"name":"a"}`, v: &CleanParams{}},
		{name: "all optional", in: `{}`, v: &UpdateParams{}},
		{name: "nested wrong type", in: `{"what":[1],"name":"a"}`, v: &CleanParams{}, badName: "what"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			name, err := decodeParams(json.RawMessage(tt.in), tt.v)
			if tt.badName == "" {
				if err != nil {
					t.Fatalf("decodeParams(%s) = %v", tt.in, err)
				}
				return
			}
			if err == nil || name != tt.badName {
				t.Errorf("decodeParams(%s) = %q, %v; want parameter %q", tt.in, name, err, tt.badName)
			}
		})
	}
}
