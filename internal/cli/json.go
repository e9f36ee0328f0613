package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// The JSON of --json is an object of the io.luo.Manager interface: a
// method's reply, or an array of them for commands taking UNIT...
// (docs/luoctl-json.md). The interface leaves an optional field out when
// it has no value; a nil slice or pointer in luod's reply would print as
// null, so nulls are dropped from objects on the way out.

// printJSON prints v as indented JSON without null object members.
func (a *app) printJSON(v any) error {
	b, err := marshalJSON(v)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err = a.out.Write(out.Bytes())
	return err
}

// printJSONLine prints the JSON value raw on one line, without null object
// members.
func (a *app) printJSONLine(raw json.RawMessage) error {
	b, err := dropNulls(raw)
	if err != nil {
		return err
	}
	_, err = a.out.Write(append(b, '\n'))
	return err
}

// marshalJSON encodes v compactly, without escaping HTML characters and
// without null object members.
func marshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return dropNulls(b.Bytes())
}

// dropNulls returns the JSON value in data compacted, with every object
// member whose value is null left out, keeping the members' order. Nulls
// in arrays stay.
func dropNulls(data []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var b bytes.Buffer
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("json: %w", err)
	}
	if err := copyJSON(dec, &b, tok); err != nil {
		return nil, fmt.Errorf("json: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("json: data after the value")
	}
	return b.Bytes(), nil
}

// copyJSON writes the value that starts with tok to b, reading the rest of
// it from dec.
func copyJSON(dec *json.Decoder, b *bytes.Buffer, tok json.Token) error {
	switch v := tok.(type) {
	case json.Delim:
		if v == '[' {
			b.WriteByte('[')
			for n := 0; dec.More(); n++ {
				if n > 0 {
					b.WriteByte(',')
				}
				elem, err := dec.Token()
				if err != nil {
					return err
				}
				if err := copyJSON(dec, b, elem); err != nil {
					return err
				}
			}
			b.WriteByte(']')
		} else {
			b.WriteByte('{')
			for n := 0; dec.More(); {
				key, err := dec.Token()
				if err != nil {
					return err
				}
				val, err := dec.Token()
				if err != nil {
					return err
				}
				if val == nil {
					continue
				}
				if n > 0 {
					b.WriteByte(',')
				}
				n++
				writeJSONString(b, key.(string))
				b.WriteByte(':')
				if err := copyJSON(dec, b, val); err != nil {
					return err
				}
			}
			b.WriteByte('}')
		}
		_, err := dec.Token() // the closing delimiter
		return err
	case string:
		writeJSONString(b, v)
	case json.Number:
		b.WriteString(v.String())
	case bool:
		fmt.Fprint(b, v)
	case nil:
		b.WriteString("null")
	default:
		return fmt.Errorf("unexpected token %v", tok)
	}
	return nil
}

// writeJSONString writes s as a JSON string, without escaping HTML
// characters.
func writeJSONString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)       // a string always encodes
	b.Truncate(b.Len() - 1) // Encode's newline
}
