package kimage_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/liveupdate/luo/internal/kimage"
)

// v5 is what Linux 7.2 and 7.3 speak.
var v5 = kimage.Formats{LUO: "luo-v5", KHO: "kho-v4", Memfd: "memfd-v2"}

func TestFormatsString(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		f    kimage.Formats
		want string
	}{
		{v5, "luo-v5 kho-v4 memfd-v2"},
		{kimage.Formats{}, "luo-? kho-? memfd-?"},
		{kimage.Formats{KHO: "kho-v12"}, "luo-? kho-v12 memfd-?"},
	} {
		if got := tt.f.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.f, got, tt.want)
		}
	}
}

func TestAccepts(t *testing.T) {
	t.Parallel()
	with := func(change func(*kimage.Formats)) kimage.Formats {
		f := v5
		change(&f)
		return f
	}
	for _, tt := range []struct {
		name          string
		running, next kimage.Formats
		kinds         []string // nil: accepted
		says          []string // in the error, in this order
	}{
		{name: "same", running: v5, next: v5},
		{
			name: "LUO differs", running: v5, next: with(func(f *kimage.Formats) { f.LUO = "luo-v6" }),
			kinds: []string{"LUO"}, says: []string{"LUO luo-v5 -> luo-v6: the next kernel panics at boot"},
		},
		{
			name: "KHO differs", running: v5, next: with(func(f *kimage.Formats) { f.KHO = "kho-v3" }),
			kinds: []string{"KHO"}, says: []string{"KHO kho-v4 -> kho-v3: the next kernel disables KHO revival"},
		},
		{
			name: "memfd differs", running: v5, next: with(func(f *kimage.Formats) { f.Memfd = "memfd-v9" }),
			kinds: []string{"memfd"}, says: []string{"memfd memfd-v2 -> memfd-v9: every open of /dev/liveupdate fails with EIO for the whole boot"},
		},
		{
			name: "all differ", running: v5, next: kimage.Formats{LUO: "luo-v6", KHO: "kho-v5", Memfd: "memfd-v3"},
			kinds: []string{"LUO", "KHO", "memfd"},
			says:  []string{"LUO luo-v5 -> luo-v6: ", "panics at boot; KHO kho-v4 -> kho-v5: ", "KHO revival", "; memfd memfd-v2 -> memfd-v3: ", "EIO"},
		},
		{
			name: "next unknown", running: v5, next: with(func(f *kimage.Formats) { f.Memfd = "" }),
			kinds: []string{"memfd"}, says: []string{"memfd memfd-v2 -> memfd-?: unknown, so it cannot be ruled out that every open of /dev/liveupdate fails with EIO"},
		},
		{
			name: "running unknown", running: with(func(f *kimage.Formats) { f.LUO = "" }), next: v5,
			kinds: []string{"LUO"}, says: []string{"LUO luo-? -> luo-v5: unknown, so it cannot be ruled out that the next kernel panics at boot"},
		},
		{
			name: "both unknown", running: kimage.Formats{}, next: kimage.Formats{},
			kinds: []string{"LUO", "KHO", "memfd"}, says: []string{"LUO luo-? -> luo-?: unknown", "KHO kho-? -> kho-?: unknown", "memfd memfd-? -> memfd-?: unknown"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.running.Accepts(tt.next)
			if tt.kinds == nil {
				if err != nil {
					t.Fatalf("%v.Accepts(%v) = %v, want nil", tt.running, tt.next, err)
				}
				return
			}
			var m *kimage.MismatchError
			if !errors.As(err, &m) {
				t.Fatalf("%v.Accepts(%v) = %v, want a *MismatchError", tt.running, tt.next, err)
			}
			if !slices.Equal(m.Kinds, tt.kinds) || m.Running != tt.running || m.Next != tt.next {
				t.Errorf("MismatchError = %+v, want Kinds %q, Running %v, Next %v", m, tt.kinds, tt.running, tt.next)
			}
			msg := err.Error()
			rest := msg
			for _, s := range tt.says {
				i := strings.Index(rest, s)
				if i < 0 {
					t.Fatalf("error %q does not say %q (in order)", msg, s)
				}
				rest = rest[i+len(s):]
			}
		})
	}
}
