// Package interop tests package keep and its example service
// (examples/counter) under the real systemd 262 of Debian sid, booted in
// QEMU on the LUO test kernels and live-updated twice with kexec:
// 7.2 -> 7.3 -> 7.2. It is run by "make interop" (LUO_INTEROP=1); see
// TestInterop. TestInteropLuod installs the luo package (make deb) in the
// same system and runs luod as luod.service, with varlinkctl against its
// control socket.
//
// The VM's root file system is a Debian sid minbase tree built once by
// scripts/interop-rootfs.sh and cached in .cache/interop/rootfs-r<recipe>.
// Each run copies it, adds the freshly built counter and guest driver
// (internal/interop/driver), the two kernels as /boot/vmlinuz-7.2 and
// /boot/vmlinuz-7.3 and the unit files below, and boots an ext4 image of it
// with QEMU's snapshot=on: writes stay for the whole QEMU process (a kexec is
// not a reset), the image on the host is never modified.
//
// This file holds what the host test and its unit tests share: the unit
// files and the parser of the driver's lines.
package interop

import (
	"fmt"
	"strconv"
	"strings"
)

// Unit is one counter service under test.
type Unit struct {
	Name string
	// Mode is how keep carries the region: "fdstore", "luosession" or
	// "own" (see keep/doc.go).
	Mode string
	Text string
}

// Units are the counter services, in the order they start (counter-own is
// ordered after counter-luos: /dev/liveupdate admits one opener at a time,
// and both systemd (for LUOSession=) and keep (for its own session) open
// it while the service starts).
var Units = []Unit{
	{Name: "counter-mem.service", Mode: "fdstore", Text: `[Unit]
Description=keep counter: fd-store mode (systemd carries the memfds)

[Service]
Type=notify
User=nobody
ExecStart=/usr/local/bin/counter -v
FileDescriptorStoreMax=8
FileDescriptorStorePreserve=yes

[Install]
WantedBy=multi-user.target
`},
	{Name: "counter-luos.service", Mode: "luosession", Text: `[Unit]
Description=keep counter: session mode, session handed out by systemd (LUOSession=)
After=counter-mem.service

[Service]
Type=notify
User=nobody
ExecStart=/usr/local/bin/counter -v -session state
LUOSession=state
FileDescriptorStoreMax=8
FileDescriptorStorePreserve=yes

[Install]
WantedBy=multi-user.target
`},
	{Name: "counter-own.service", Mode: "own", Text: `[Unit]
Description=keep counter: session mode, keep's own session (root opens /dev/liveupdate)
After=counter-luos.service

[Service]
Type=notify
ExecStart=/usr/local/bin/counter -v -session own
FileDescriptorStoreMax=8
FileDescriptorStorePreserve=yes

[Install]
WantedBy=multi-user.target
`},
}

// DriverUnit runs the guest driver once the counters are up.
var DriverUnit = DriverUnitAfter("interop test driver", "counter-mem.service", "counter-luos.service", "counter-own.service")

// DriverUnitAfter is the unit of the guest driver, described as
// description, started at boot once the units after name are up (Wants=
// and After= them; none: once the system is up).
func DriverUnitAfter(description string, after ...string) string {
	deps := ""
	if len(after) > 0 {
		deps = "Wants=" + strings.Join(after, " ") + "\nAfter=" + strings.Join(after, " ") + "\n"
	}
	return "[Unit]\nDescription=" + description + "\n" + deps + `
[Service]
Type=exec
ExecStart=/usr/local/bin/interop-driver
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
`
}

// An Event is one "INTEROP stage=N key=value ..." line of the driver.
type Event struct {
	Stage  int
	Fields map[string]string
	Line   string
}

// Get returns a field ("" when absent).
func (e Event) Get(k string) string { return e.Fields[k] }

// ParseEvent parses a driver line; ok is false for any other line. Values
// are plain words or Go-quoted strings.
func ParseEvent(line string) (ev Event, ok bool, err error) {
	i := strings.Index(line, "INTEROP stage=")
	if i < 0 {
		return ev, false, nil
	}
	ev = Event{Fields: map[string]string{}, Line: line[i:]}
	rest := line[i+len("INTEROP "):]
	for rest = strings.TrimLeft(rest, " "); rest != ""; rest = strings.TrimLeft(rest, " ") {
		eq := strings.IndexByte(rest, '=')
		if eq <= 0 || strings.ContainsAny(rest[:eq], " \"") {
			return ev, true, fmt.Errorf("interop: bad field at %q", rest)
		}
		key := rest[:eq]
		rest = rest[eq+1:]
		var val string
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				return ev, true, fmt.Errorf("interop: field %s: %w", key, err)
			}
			val, _ = strconv.Unquote(q)
			rest = rest[len(q):]
		} else {
			end := strings.IndexByte(rest, ' ')
			if end < 0 {
				end = len(rest)
			}
			val, rest = rest[:end], rest[end:]
		}
		ev.Fields[key] = val
	}
	n, err := strconv.Atoi(ev.Fields["stage"])
	if err != nil {
		return ev, true, fmt.Errorf("interop: stage: %w", err)
	}
	ev.Stage = n
	return ev, true, nil
}

// Status is a counter's STATUS= text, split up: generation=3 origin=luo
// verified=ok live_updates=1 size=1048576 mode=<the rest of the line>.
type Status struct {
	Generation  int
	Origin      string
	Verified    string
	LiveUpdates int
	Mode        string
}

// ParseStatus parses a counter's status text.
func ParseStatus(s string) (Status, error) {
	var st Status
	head, mode, ok := strings.Cut(s, " mode=")
	if !ok {
		return st, fmt.Errorf("interop: status %q has no mode=", s)
	}
	st.Mode = mode
	f := map[string]string{}
	for _, w := range strings.Fields(head) {
		if k, v, ok := strings.Cut(w, "="); ok {
			f[k] = v
		}
	}
	var err1, err2 error
	st.Generation, err1 = strconv.Atoi(f["generation"])
	st.LiveUpdates, err2 = strconv.Atoi(f["live_updates"])
	st.Origin, st.Verified = f["origin"], f["verified"]
	if err1 != nil || err2 != nil || st.Origin == "" || st.Verified == "" {
		return st, fmt.Errorf("interop: status %q: missing or bad generation, origin, verified or live_updates", s)
	}
	return st, nil
}
