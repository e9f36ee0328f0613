package luo_test

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/liveupdate/luo"
	"github.com/liveupdate/luo/memfd"
)

func TestValidateName(t *testing.T) {
	for _, tc := range []struct {
		name    string
		wantErr string
	}{
		{"a", ""},
		{"cache", ""},
		{"with space/and slash", ""},
		{strings.Repeat("A", 63), ""},
		{"", "empty"},
		{strings.Repeat("X", 64), "64 bytes; the kernel allows at most 63"},
		{"nul\x00inside", "NUL byte at offset 3"},
	} {
		err := luo.ValidateName(tc.name)
		if tc.wantErr == "" {
			if err != nil {
				t.Errorf("ValidateName(%q) = %v, want nil", tc.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("ValidateName(%q) = %v, want error containing %q", tc.name, err, tc.wantErr)
		}
		if !errors.Is(err, luo.ErrInvalidName) || !errors.Is(err, syscall.EINVAL) {
			t.Errorf("ValidateName(%q) = %v, want errors.Is ErrInvalidName and EINVAL", tc.name, err)
		}
	}
}

func TestErrorMessages(t *testing.T) {
	for _, tc := range []struct {
		err  *luo.Error
		want []string
	}{
		{&luo.Error{Op: "open", Err: syscall.ENOENT}, []string{"luo: open: no such file", "liveupdate=on"}},
		{&luo.Error{Op: "open", Err: syscall.EBUSY, Detail: "held by pid 7 (luod)"}, []string{"single-owner", "held by pid 7 (luod)"}},
		{&luo.Error{Op: "PRESERVE_FD", Session: "s", Token: 0x1234, Err: syscall.ENOENT},
			[]string{`PRESERVE_FD session "s" token 4660`, "memfds", "not sockets"}},
		{&luo.Error{Op: "PRESERVE_FD", Session: "s", Token: 1, Err: syscall.EEXIST}, []string{"token is already used"}},
		{&luo.Error{Op: "PRESERVE_FD", Session: "s", Token: 1, Err: syscall.EBUSY}, []string{"already preserved", "not finished"}},
		{&luo.Error{Op: "PRESERVE_FD", Session: "s", Token: 1, Err: syscall.EINVAL}, []string{"incoming", "FINISH it"}},
		{&luo.Error{Op: "RETRIEVE_SESSION", Session: "s", Err: syscall.ENOENT}, []string{"no incoming session", "cold boot"}},
		{&luo.Error{Op: "RETRIEVE_SESSION", Session: "s", Err: syscall.EINVAL}, []string{"already retrieved"}},
		{&luo.Error{Op: "CREATE_SESSION", Session: "s", Err: syscall.EEXIST}, []string{"already exists"}},
		{&luo.Error{Op: "FINISH", Session: "s", Err: syscall.EINVAL}, []string{"only incoming"}},
		{&luo.Error{Op: "GET_NAME", Session: "s", Err: syscall.ENOTTY}, []string{"32-bit"}},
	} {
		msg := tc.err.Error()
		for _, w := range tc.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%q does not contain %q", msg, w)
			}
		}
		if !errors.Is(tc.err, tc.err.Err) {
			t.Errorf("errors.Is(%v, %v) = false", tc.err, tc.err.Err)
		}
	}
}

func TestOpenMissingDevice(t *testing.T) {
	_, err := luo.OpenPath(filepath.Join(t.TempDir(), "liveupdate"))
	if !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("OpenPath(missing) = %v, want ENOENT", err)
	}
	var lerr *luo.Error
	if !errors.As(err, &lerr) || lerr.Op != "open" || !strings.Contains(err.Error(), "CONFIG_LIVEUPDATE") {
		t.Errorf("error %q does not explain the missing device", err)
	}
}

func TestCheckPreservable(t *testing.T) {
	mfd, err := memfd.New("t", 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer mfd.Close()
	if err := luo.CheckPreservable(mfd); err != nil {
		t.Errorf("memfd: %v, want nil", err)
	}

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()

	sock, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(t.TempDir(), "s"), Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	sockf, err := sock.File()
	if err != nil {
		t.Fatal(err)
	}
	defer sockf.Close()

	reg, err := os.Create(filepath.Join(t.TempDir(), "regular"))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()

	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()

	for _, tc := range []struct {
		name string
		f    *os.File
		want string
	}{
		{"pipe", r, "a pipe"},
		{"socket", sockf, "a socket"},
		{"regular", reg, "regular file"},
		{"devnull", devnull, "character device"},
	} {
		err := luo.CheckPreservable(tc.f)
		if !errors.Is(err, luo.ErrNotPreservable) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: CheckPreservable = %v, want ErrNotPreservable mentioning %q", tc.name, err, tc.want)
		}
	}

	// A linked tmpfs file is refused, the same file unlinked is accepted.
	if _, err := os.Stat("/dev/shm"); err == nil {
		tf, err := os.CreateTemp("/dev/shm", "luo-test")
		if err == nil {
			defer tf.Close()
			if err := luo.CheckPreservable(tf); !errors.Is(err, luo.ErrNotPreservable) || !strings.Contains(err.Error(), "link") {
				t.Errorf("linked tmpfs file: %v, want not preservable (link)", err)
			}
			os.Remove(tf.Name())
			if err := luo.CheckPreservable(tf); err != nil {
				t.Errorf("unlinked tmpfs file: %v, want nil", err)
			}
		}
	}
}

func TestSessionFromFileRejectsOthers(t *testing.T) {
	mfd, err := memfd.New("t", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer mfd.Close()
	if _, err := luo.SessionFromFile(mfd); !errors.Is(err, luo.ErrNotSession) {
		t.Errorf("SessionFromFile(memfd) = %v, want ErrNotSession", err)
	}
	if luo.IsSession(mfd) {
		t.Error("IsSession(memfd) = true")
	}
}

func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"a", "", strings.Repeat("x", 63), strings.Repeat("x", 64), "a\x00b", "luod/unit/name"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := luo.ValidateName(name)
		want := len(name) >= 1 && len(name) <= luo.MaxNameLen && !strings.Contains(name, "\x00")
		if (err == nil) != want {
			t.Fatalf("ValidateName(%q) = %v, want valid=%v", name, err, want)
		}
		if err != nil && (!errors.Is(err, luo.ErrInvalidName) || !errors.Is(err, syscall.EINVAL)) {
			t.Fatalf("ValidateName(%q) = %v does not match ErrInvalidName and EINVAL", name, err)
		}
	})
}
