package supervisor

import (
	"testing"
	"time"
)

func TestLogLimit(t *testing.T) {
	t0 := time.Unix(1000, 0)
	l := logLimit{interval: 10 * time.Second, burst: 3}
	var got []bool
	for i := range 5 {
		ok, dropped := l.allow(t0.Add(time.Duration(i) * time.Second))
		got = append(got, ok)
		if dropped != 0 {
			t.Errorf("line %d: %d dropped reported within the interval", i, dropped)
		}
	}
	if want := []bool{true, true, true, false, false}; !equalBools(got, want) {
		t.Errorf("allowed %v, want %v", got, want)
	}
	ok, dropped := l.allow(t0.Add(10 * time.Second))
	if !ok || dropped != 2 {
		t.Errorf("next interval: ok %v dropped %d, want true 2", ok, dropped)
	}
	if _, dropped := l.allow(t0.Add(25 * time.Second)); dropped != 0 {
		t.Errorf("an interval without drops reported %d", dropped)
	}

	var def logLimit // journald's defaults: 10,000 per 30 s
	n := 0
	for i := range 100000 {
		if ok, _ := def.allow(t0.Add(time.Duration(i) * 100 * time.Microsecond)); ok {
			n++
		}
	}
	if n != 10000 {
		t.Errorf("defaults let %d of 100,000 lines in 10 s through, want 10,000", n)
	}
	off := logLimit{interval: -1}
	for range 20000 {
		if ok, _ := off.allow(t0); !ok {
			t.Fatal("a disabled limit dropped a line")
		}
	}
}

func equalBools(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
