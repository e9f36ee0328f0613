package activation

import (
	"os"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

func TestOwnPIDFDID(t *testing.T) {
	t.Parallel()
	id, ok, err := ownPIDFDID()
	if err != nil {
		t.Fatalf("ownPIDFDID: %v", err)
	}
	if !ok {
		t.Skip("no pidfs on this kernel (Linux < 6.9): the LISTEN_PIDFDID check is skipped")
	}
	again, ok2, err := ownPIDFDID()
	if err != nil || !ok2 || again != id {
		t.Errorf("second call = %d, %v, %v; want %d", again, ok2, err, id)
	}
	// Another process has another id.
	cmd := exec.Command("/bin/sh", "-c", "read -r x")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	fd, err := unix.PidfdOpen(cmd.Process.Pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	if st.Ino == id {
		t.Errorf("child pidfd inode %d equals ours", st.Ino)
	}
	// A pidfd of ourselves opened another way agrees.
	self, err := unix.PidfdOpen(os.Getpid(), unix.PIDFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(self)
	if err := unix.Fstat(self, &st); err != nil {
		t.Fatal(err)
	}
	if st.Ino != id {
		t.Errorf("pidfd inode %d, ownPIDFDID %d", st.Ino, id)
	}
}
