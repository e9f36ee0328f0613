package control_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/cli"
	"github.com/liveupdate/luo/internal/control"
	"github.com/liveupdate/luo/internal/luodtest"
)

var jsonExamples = flag.String("luoctl-json-examples", "", "write what TestLuoctlJSON's luoctl printed to this file, as examples for "+jsonDoc)

// TestLuoctlJSON runs every luoctl command with --json against a real luod
// (root only) and checks each output against the interface description.
func TestLuoctlJSON(t *testing.T) {
	d := luodtest.Start(t, map[string]string{
		"web.service": `[Unit]
Description=Web frontend

[Service]
Type=notify
ExecStart=@BIN@/testsvc -status=serving -store state=memfd:hello -store listen=socket
FileDescriptorStoreMax=4
FileDescriptorStorePreserve=yes
`,
		"broken.service": `[Unit]
Description=Exits at once

[Service]
Type=simple
ExecStart=@BIN@/testsvc -ready=false -exit 3
`,
	})
	d.WaitUnit("web.service", "active with its store", func(u control.Unit) bool {
		return u.ActiveState == "active" && u.FDStoreCount == 2
	})
	d.WaitUnit("broken.service", "failed", func(u control.Unit) bool { return u.ActiveState == "failed" })
	doc, err := os.ReadFile(jsonDoc)
	if err != nil {
		t.Fatal(err)
	}
	manager, luoctl := schemas(t, string(doc))

	var examples bytes.Buffer
	ran := map[string]bool{}
	run := func(code int, args ...string) {
		t.Helper()
		var out, errb bytes.Buffer
		env := &cli.Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}
		line := strings.Join(args, " ")
		if got := env.Main(context.Background(), append([]string{"--socket=" + d.Socket}, args...)); got != code {
			t.Errorf("luoctl %s: exit %d, want %d\nstderr: %s", line, got, code, errb.String())
		}
		for _, bad := range checkOutput(manager, luoctl, args, out.String()) {
			t.Errorf("luoctl %s: %s", line, bad)
		}
		cmd, _, _ := shapeOf(args)
		ran[cmd] = true
		fmt.Fprintf(&examples, "```console\n$ luoctl %s\n%s```\n\n", line, out.String())
	}

	run(0, "version", "--json")
	run(0, "status", "--json")
	run(0, "list", "--json")
	run(0, "status", "web.service", "--json")
	run(0, "fdstore", "web.service", "--json")
	run(0, "sessions", "--json")
	run(0, "logs", "web.service", "-n", "2", "--json")
	kernel := filepath.Join(d.Dir, "bzImage")
	if err := os.WriteFile(kernel, []byte("not a kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(cli.ExitUpdate, "update", "plan", "--kernel", kernel, "--cmdline=liveupdate=on", "--json") // checks fail
	run(0, "update", "plan", "--no-kexec", "--json")
	run(0, "update", "run", "--no-kexec", "--json")
	waitReport(t, d)
	run(0, "update", "report", "--json")
	run(cli.ExitFailure, "update", "needed", "--kernels", filepath.Join(d.Dir, "vmlinuz-*"), "--json") // nothing staged or newer
	run(0, "daemon-reexec", "--json")
	run(0, "restart", "web.service", "--json")
	run(0, "stop", "web.service", "--json")
	run(0, "start", "web.service", "--json")
	run(0, "clean", "broken.service", "--json")
	run(0, "reset-failed", "broken.service", "--json")
	run(0, "daemon-reload", "--json")
	run(cli.ExitFailure, "poweroff", "--json") // NotSupported: luod is not PID 1
	run(cli.ExitFailure, "reboot", "--json")
	// Staging needs a LUO device, which this host has not: the commands
	// fail, print nothing on stdout, and their examples come from the VM
	// suite (TestVMLiveUpdate).
	fails := func(code int, args ...string) {
		t.Helper()
		var out, errb bytes.Buffer
		env := &cli.Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}
		if got := env.Main(context.Background(), append([]string{"--socket=" + d.Socket}, args...)); got != code || out.Len() != 0 || errb.Len() == 0 {
			t.Errorf("luoctl %s: exit %d (want %d), stdout %q, stderr %q", strings.Join(args, " "), got, code, out.String(), errb.String())
		}
		cmd, _, _ := shapeOf(args)
		ran[cmd] = true
	}
	fails(cli.ExitUpdate, "update", "stage", "--kernel", kernel, "--cmdline=liveupdate=on", "--json")
	fails(cli.ExitFailure, "update", "status", "--json")
	fails(cli.ExitFailure, "update", "unstage", "--json")
	// This luod has no fleet settings (FleetUnavailable); the examples
	// come from internal/fleet's TestRollout, with a real etcd.
	fails(cli.ExitFailure, "fleet", "status", "--json")
	fails(cli.ExitFailure, "fleet", "release", "host2", "--json")

	for cmd := range jsonShapes {
		if !ran[cmd] {
			t.Errorf("luoctl %s --json was not run", cmd)
		}
	}
	if *jsonExamples != "" {
		if err := os.WriteFile(*jsonExamples, examples.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// waitReport waits until luod reports a finished update.
func waitReport(t *testing.T, d *luodtest.Daemon) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var r control.Report
		err := d.Call(control.MethodGetUpdateReport, nil, &r)
		if err == nil && slices.ContainsFunc(r.Timeline, func(e control.Event) bool { return e.Name == "finished" }) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no finished update report: %v %+v", err, r)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
