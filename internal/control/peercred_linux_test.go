package control_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/liveupdate/luo/internal/control"
)

// childEnv makes the test binary act as an unprivileged client (see
// TestChildClient) instead of running the tests.
const childEnv = "LUO_CONTROL_TEST_CLIENT"

// TestChildClient is the unprivileged client of TestPeerCredentials, run in
// a child process. It prints what happened to its call.
func TestChildClient(t *testing.T) {
	path := os.Getenv(childEnv)
	if path == "" {
		t.Skip("only run as the child of TestPeerCredentials")
	}
	c, err := control.Dial(context.Background(), path)
	if err != nil {
		var de *control.DialError
		fmt.Printf("DIAL permission=%v as=%v: %v\n", errors.Is(err, fs.ErrPermission), errors.As(err, &de), err)
		return
	}
	defer c.Close()
	err = c.Call(context.Background(), control.MethodGetManager, nil, nil)
	var re *control.RemoteError
	if errors.As(err, &re) {
		fmt.Printf("REMOTE %s: %v\n", re.Name, err)
		return
	}
	fmt.Printf("CALL %v\n", err)
}

// TestPeerCredentials checks that only root gets in: a client running as
// nobody gets PermissionDenied even when the socket's mode lets it
// connect, and cannot connect at all through the default mode 0600.
func TestPeerCredentials(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a client as another user")
	}
	dir, err := os.MkdirTemp("", "luoctl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// A copy of the test binary that nobody may run (the build directory
	// is private).
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "control.test")
	if err := copyFile(bin, self); err != nil {
		t.Fatal(err)
	}

	path := filepath.Join(dir, "sock")
	var called atomic.Bool
	s, err := control.Listen(path, func(ctx context.Context, call *control.Call) {
		called.Store(true)
		_ = call.Reply(nil)
	}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background()) }()
	t.Cleanup(func() {
		s.Close()
		<-done
	})

	tests := []struct {
		name string
		mode fs.FileMode
		want string
	}{
		{"mode 0600", 0o600, "DIAL permission=true as=true: cannot connect to " + path + ": permission denied (luod's control socket is root-only)"},
		{"mode 0666", 0o666, "REMOTE org.varlink.service.PermissionDenied: permission denied: luod's control socket is root-only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(bin, "-test.run=^TestChildClient$")
			cmd.Env = append(os.Environ(), childEnv+"="+path)
			cmd.Dir = dir
			cmd.SysProcAttr = &syscall.SysProcAttr{
				Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}},
			}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("child: %v\n%s", err, out)
			}
			if !strings.Contains(string(out), tt.want+"\n") {
				t.Errorf("child output:\n%s\nwant a line %q", out, tt.want)
			}
		})
	}
	if called.Load() {
		t.Error("the handler ran for an unprivileged client")
	}
	// Root still gets in.
	if err := dial(t, path).Call(context.Background(), control.MethodGetManager, nil, nil); err != nil {
		t.Fatal(err)
	}
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
