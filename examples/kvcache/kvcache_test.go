package main

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/liveupdate/luo/luotest"
)

func TestMain(m *testing.M) { luotest.Main(m) }

const unit = `[Unit]
Description=kvcache, the example service of luotest
[Service]
Type=notify
ExecStart=/vmtest/bin/kvcache -socket /run/kvcache.sock
FileDescriptorStoreMax=4
FileDescriptorStorePreserve=yes
`

// TestVMKVCache boots 7.2, live updates to 7.3 and back to 7.2 with luod as
// PID 1, and checks that every entry written so far is still there: after a
// restart of the service in the first kernel and after each kexec.
func TestVMKVCache(t *testing.T) {
	cfg := luotest.Config{
		Kernels:  []string{"7.2", "7.3", "7.2"},
		Services: map[string]string{"kvcache": "github.com/liveupdate/luo/examples/kvcache"},
		Units:    map[string]string{"kvcache.service": unit},
	}
	luotest.Run(t, cfg, func(t *testing.T, vm *luotest.VM) {
		u := vm.WaitActive("kvcache.service")
		t.Logf("stage %d/%d, Linux %s: %s", vm.Stage(), vm.Stages(), vm.Release(), u.Status)
		if vm.Stage() == 1 {
			want(t, u.Status, "keys=0 origin=fresh verified=fresh")
			set(t, "big", value(4000))
			set(t, "stage1", written(1))
			u = vm.Restart("kvcache.service")
			want(t, u.Status, "keys=2 origin=fdstore verified=ok")
		} else {
			want(t, u.Status, fmt.Sprintf("keys=%d origin=luo verified=ok", vm.Stage()))
			set(t, fmt.Sprintf("stage%d", vm.Stage()), written(vm.Stage()))
		}
		check(t, "big", value(4000))
		for n := 1; n <= vm.Stage(); n++ {
			check(t, fmt.Sprintf("stage%d", n), written(n))
		}
		fds := vm.FDStore("kvcache.service")
		if len(fds) == 0 {
			t.Error("the fd store is empty")
		}
		for _, fd := range fds {
			t.Logf("fd store: %s %s %d bytes, survives a kexec: %s (%s)", fd.Name, fd.Type, fd.Size, fd.Survives, fd.Why)
			if fd.Survives != "yes" {
				t.Errorf("fd store: %s will not survive the kexec", fd.Name)
			}
		}
		// Back in Run: the live update into the next stage.
	})
}

// written is the value stage n writes.
func written(n int) string { return fmt.Sprintf("written in stage %d", n) }

// value returns a value of n bytes that shows any change.
func value(n int) string {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "%d,", i)
	}
	return b.String()[:n]
}

func want(t *testing.T, got, want string) {
	t.Helper()
	if got != want {
		t.Fatalf("STATUS=%q, want %q", got, want)
	}
}

// request sends one request to kvcache and returns its answer.
func request(t *testing.T, req string) string {
	t.Helper()
	c, err := net.Dial("unix", "/run/kvcache.sock")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintln(c, req)
	answer, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("%.20s: %v", req, err)
	}
	return strings.TrimSuffix(answer, "\n")
}

func set(t *testing.T, key, value string) {
	t.Helper()
	if got := request(t, "SET "+key+" "+value); got != "OK" {
		t.Fatalf("SET %s: %q", key, got)
	}
}

// check fails t unless key holds value.
func check(t *testing.T, key, value string) {
	t.Helper()
	if got := request(t, "GET "+key); got != "VALUE "+value {
		t.Fatalf("GET %s = %.40q (%d bytes), want VALUE %.40q (%d bytes)", key, got, len(got), value, len(value))
	}
}
