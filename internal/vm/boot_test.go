package vm

import "testing"

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"\x1bc\x1b[?7l\x1b[2J\x1b[0mSeaBIOS (version 1.16.2)":   "SeaBIOS (version 1.16.2)",
		"Booting from ROM..\x1bc\x1b[?7l\x1b[2Jvminit: stage 1": "Booting from ROM..vminit: stage 1",
		"\tpanic: x\r":          "\tpanic: x",
		"caf\u00e9 \x00\x07end": "caf\u00e9 end",
	} {
		if got := printable([]byte(in)); got != want {
			t.Errorf("printable(%q) = %q, want %q", in, got, want)
		}
	}
}
