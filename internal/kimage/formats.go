package kimage

import (
	"errors"
	"fmt"
	"strings"
)

// Formats are the compatible strings of the Live Update formats a kernel
// speaks. An empty field means unknown.
type Formats struct {
	// LUO is the format of LUO's own state, such as "luo-v5".
	LUO string
	// KHO is the format of the Kexec HandOver tree, such as "kho-v4".
	KHO string
	// Memfd is the format of the memfd file handler, such as "memfd-v2".
	Memfd string
}

// A kind is one of the three formats.
type kind struct {
	name   string // as in messages: "LUO"
	prefix string // of its compatible string: "luo"
	config string // the Kconfig option that brings it
	// consequence says what a mismatch does to the next kernel.
	consequence string
	field       func(*Formats) *string
}

// kinds lists the formats in the order of Formats' fields. It is never
// modified.
var kinds = [...]kind{
	{
		name: "LUO", prefix: "luo", config: "CONFIG_LIVEUPDATE",
		consequence: "the next kernel panics at boot",
		field:       func(f *Formats) *string { return &f.LUO },
	},
	{
		name: "KHO", prefix: "kho", config: "CONFIG_KEXEC_HANDOVER",
		consequence: "the next kernel disables KHO revival and boots without any preserved state",
		field:       func(f *Formats) *string { return &f.KHO },
	},
	{
		name: "memfd", prefix: "memfd", config: "CONFIG_LIVEUPDATE_MEMFD",
		consequence: "every open of /dev/liveupdate fails with EIO for the whole boot of the next kernel, so nothing can be retrieved",
		field:       func(f *Formats) *string { return &f.Memfd },
	},
}

// String returns the three strings separated by spaces, such as
// "luo-v5 kho-v4 memfd-v2"; an unknown one is written as "luo-?".
func (f Formats) String() string {
	var b strings.Builder
	for i, k := range kinds {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k.show(*k.field(&f)))
	}
	return b.String()
}

// show returns s, or the kind's placeholder for an unknown string.
func (k *kind) show(s string) string {
	if s == "" {
		return k.prefix + "-?"
	}
	return s
}

// Accepts reports whether this kernel, which speaks f, can hand what it
// preserves over to a kernel speaking next: it returns nil when every
// format is known and equal in both, and a [*MismatchError] naming each
// format that differs or is unknown, with its consequence, otherwise.
func (f Formats) Accepts(next Formats) error {
	var bad []string
	for _, k := range kinds {
		have, want := *k.field(&f), *k.field(&next)
		if have == "" || want == "" || have != want {
			bad = append(bad, k.name)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return &MismatchError{Running: f, Next: next, Kinds: bad}
}

// A MismatchError tells why a kernel cannot take over what another kernel
// preserves. [Formats.Accepts] returns it.
type MismatchError struct {
	// Running and Next are the formats of the kernel that preserves and
	// of the kernel that would take over.
	Running, Next Formats
	// Kinds names the formats that differ or are unknown, in the order
	// "LUO", "KHO", "memfd".
	Kinds []string
}

// Error says, for each format in Kinds, the two strings and what the next
// kernel would do, such as "LUO luo-v5 -> luo-v6: the next kernel panics at
// boot".
func (e *MismatchError) Error() string {
	var parts []string
	for _, k := range kinds {
		for _, name := range e.Kinds {
			if name != k.name {
				continue
			}
			have, want := *k.field(&e.Running), *k.field(&e.Next)
			consequence := k.consequence
			if have == "" || want == "" {
				consequence = "unknown, so it cannot be ruled out that " + consequence
			}
			parts = append(parts, fmt.Sprintf("%s %s -> %s: %s", k.name, k.show(have), k.show(want), consequence))
		}
	}
	return "live update formats differ: " + strings.Join(parts, "; ")
}

// Errors that [Image.Formats] and [Running] wrap.
var (
	// ErrMissing means a kernel lacks a format: it was built without the
	// Kconfig option that brings it, and cannot take part in a live update.
	ErrMissing = errors.New("missing Live Update format")
	// ErrAmbiguous means a kernel holds two versions of one format, so
	// which one it speaks cannot be told.
	ErrAmbiguous = errors.New("ambiguous Live Update format")
)

// formatsOf turns the strings a scan saw, by kind, into Formats, or an
// error wrapping ErrMissing or ErrAmbiguous (or both) that names every kind
// at fault.
func formatsOf(seen *[len(kinds)][]string) (Formats, error) {
	var f Formats
	var missing, ambiguous []string
	for i, k := range kinds {
		switch v := seen[i]; len(v) {
		case 0:
			missing = append(missing, fmt.Sprintf("no %s-vN string (built without %s?)", k.prefix, k.config))
		case 1:
			*k.field(&f) = v[0]
		default:
			ambiguous = append(ambiguous, strings.Join(v, " and "))
		}
	}
	m, a := strings.Join(missing, ", "), strings.Join(ambiguous, ", ")
	switch {
	case m != "" && a != "":
		return Formats{}, fmt.Errorf("%w: %s; %w: %s", ErrMissing, m, ErrAmbiguous, a)
	case m != "":
		return Formats{}, fmt.Errorf("%w: %s", ErrMissing, m)
	case a != "":
		return Formats{}, fmt.Errorf("%w: %s", ErrAmbiguous, a)
	}
	return f, nil
}
