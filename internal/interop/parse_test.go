package interop

import (
	"strings"
	"testing"
)

// Lines as the driver printed them in a real run.
func TestParseEvent(t *testing.T) {
	line := `   28.9s driver | INTEROP stage=2 event=record phase=boot unit=counter-luos.service active=active sub=running nfds=3 status="generation=3 origin=luo verified=ok live_updates=1 size=1048576 mode=LUO session \"counter-luos.-68532861cc9042219e432ac5\" (stored as \"state\")"`
	ev, ok, err := ParseEvent(line)
	if !ok || err != nil {
		t.Fatalf("ParseEvent: ok=%v err=%v", ok, err)
	}
	if ev.Stage != 2 || ev.Get("event") != "record" || ev.Get("unit") != "counter-luos.service" || ev.Get("nfds") != "3" {
		t.Errorf("ParseEvent: %+v", ev)
	}
	st, err := ParseStatus(ev.Get("status"))
	if err != nil {
		t.Fatal(err)
	}
	want := Status{Generation: 3, Origin: "luo", Verified: "ok", LiveUpdates: 1,
		Mode: `LUO session "counter-luos.-68532861cc9042219e432ac5" (stored as "state")`}
	if st != want {
		t.Errorf("ParseStatus = %+v, want %+v", st, want)
	}

	ev, ok, err = ParseEvent(`INTEROP stage=1 event=begin stages=3 release=7.2.13 systemd="systemd 262 (262.1-1)" kexec_count=0 uptime="9.86 5.03"`)
	if !ok || err != nil || ev.Get("systemd") != "systemd 262 (262.1-1)" || ev.Get("uptime") != "9.86 5.03" || ev.Get("kexec_count") != "0" {
		t.Errorf("ParseEvent: %+v ok=%v err=%v", ev, ok, err)
	}
	// An empty quoted value.
	ev, _, err = ParseEvent(`INTEROP stage=3 event=record status=""`)
	if err != nil || ev.Get("status") != "" || len(ev.Fields) != 3 {
		t.Errorf("ParseEvent: %+v err=%v", ev, err)
	}
}

func TestParseEventOther(t *testing.T) {
	for _, line := range []string{"", "console| [ 1.0] systemd[1]: Started", "INTEROP-TEXT stage=1 what=pid1 | x"} {
		if _, ok, err := ParseEvent(line); ok || err != nil {
			t.Errorf("ParseEvent(%q): ok=%v err=%v", line, ok, err)
		}
	}
	for _, line := range []string{
		`INTEROP stage=x event=begin`,
		`INTEROP stage=1 event="unterminated`,
		`INTEROP stage=1 novalue`,
	} {
		if _, ok, err := ParseEvent(line); !ok || err == nil {
			t.Errorf("ParseEvent(%q): ok=%v err=%v, want an error", line, ok, err)
		}
	}
}

func TestParseStatusBad(t *testing.T) {
	for _, s := range []string{"", "generation=1 origin=fresh", "generation=x origin=luo verified=ok live_updates=0 size=1 mode=m"} {
		if _, err := ParseStatus(s); err == nil {
			t.Errorf("ParseStatus(%q): no error", s)
		}
	}
}

// The unit files enable what the test relies on.
func TestUnits(t *testing.T) {
	for _, u := range Units {
		for _, want := range []string{"Type=notify", "FileDescriptorStorePreserve=yes", "FileDescriptorStoreMax=", "WantedBy=multi-user.target"} {
			if !strings.Contains(u.Text, want) {
				t.Errorf("%s lacks %s", u.Name, want)
			}
		}
	}
}
