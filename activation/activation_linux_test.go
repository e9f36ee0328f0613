package activation_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/liveupdate/luo/activation"
	"golang.org/x/sys/unix"
)

// The tests run this test binary as a child with real descriptors 3, 4, ...
// (exec.Cmd.ExtraFiles) and LISTEN_* in its environment. The child runs
// TestHelperChild, which calls Receive and prints what it got as JSON.
const (
	childEnv      = "LUO_ACTIVATION_CHILD"   // the child's mode
	childCheckEnv = "LUO_ACTIVATION_NCHECK"  // how many fds to inspect
	resultPrefix  = "LUO_ACTIVATION_RESULT " // marks the child's output line
)

// childResult is what the child reports.
type childResult struct {
	Err           string
	NotForUs      bool
	SecondErr     string
	SecondAlready bool
	SecondLen     int
	Names         []string
	FileNames     []string
	Inodes        []string            // "dev:ino" of each received file
	Named         map[string][]string // name -> "dev:ino" of Named(name)
	CloexecBefore []bool              // of fds 3.. before Receive
	CloexecAfter  []bool
	Env           map[string]*string // LISTEN_* after Receive; nil = unset
}

var listenVars = []string{"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "LISTEN_PIDFDID"}

func cloexec(n int) []bool {
	out := make([]bool, n)
	for i := range out {
		fl, err := unix.FcntlInt(uintptr(3+i), unix.F_GETFD, 0)
		out[i] = err == nil && fl&unix.FD_CLOEXEC != 0
	}
	return out
}

func devIno(f *os.File) string {
	var st unix.Stat_t
	sc, err := f.SyscallConn()
	if err != nil {
		return err.Error()
	}
	var serr error
	sc.Control(func(fd uintptr) { serr = unix.Fstat(int(fd), &st) })
	if serr != nil {
		return serr.Error()
	}
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

func TestHelperChild(t *testing.T) {
	mode := os.Getenv(childEnv)
	if mode == "" {
		t.Skip("helper for the activation tests, run as a child process")
	}
	ncheck, _ := strconv.Atoi(os.Getenv(childCheckEnv))
	var r childResult
	r.CloexecBefore = cloexec(ncheck)
	cfg := &activation.Config{UnsetEnv: strings.Contains(mode, "unset")}
	files, err := activation.Receive(cfg)
	if err != nil {
		r.Err = err.Error()
		r.NotForUs = errors.Is(err, activation.ErrNotForUs)
	}
	r.CloexecAfter = cloexec(ncheck)
	r.Names = files.Names()
	r.Named = map[string][]string{}
	for _, f := range files.All() {
		r.FileNames = append(r.FileNames, f.Name())
		r.Inodes = append(r.Inodes, devIno(f))
		if _, ok := r.Named[f.Name()]; !ok {
			for _, g := range files.Named(f.Name()) {
				r.Named[f.Name()] = append(r.Named[f.Name()], devIno(g))
			}
		}
	}
	if strings.Contains(mode, "twice") {
		again, err := activation.Receive(nil)
		if err != nil {
			r.SecondErr = err.Error()
			r.SecondAlready = errors.Is(err, activation.ErrAlreadyReceived)
		}
		r.SecondLen = again.Len()
	}
	r.Env = map[string]*string{}
	for _, k := range listenVars {
		if v, ok := os.LookupEnv(k); ok {
			r.Env[k] = &v
		}
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("%s%s\n", resultPrefix, b)
}

// childSpec describes one child run.
type childSpec struct {
	mode  string
	files int      // number of ExtraFiles
	env   []string // extra environment
	// pid: how LISTEN_PID (and LISTEN_PIDFDID) are set.
	//   "sh": by /bin/sh, which then execs the test binary and so keeps
	//         its PID: LISTEN_PID=$$.
	//   "pidfdid", "pidfdid+1": as "sh", plus LISTEN_PIDFDID read from
	//         stdin, where the parent writes the child's pidfd inode
	//         number (plus one for the mismatch case).
	//   "": not set by the harness (env may set it).
	pid string
}

// runChild runs the child and returns its report and the dev:ino of the
// files it was given.
func runChild(t *testing.T, spec childSpec) (childResult, []string) {
	t.Helper()
	var extra []*os.File
	var want []string
	for i := range spec.files {
		var f *os.File
		if i%2 == 0 {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close(); w.Close() })
			f = r
		} else {
			var err error
			if f, err = os.CreateTemp(t.TempDir(), "extra"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
		}
		extra = append(extra, f)
		want = append(want, devIno(f))
	}

	args := []string{"-test.run=^TestHelperChild$", "-test.count=1"}
	var cmd *exec.Cmd
	switch spec.pid {
	case "":
		cmd = exec.Command(os.Args[0], args...)
	case "sh":
		cmd = exec.Command("/bin/sh", append([]string{"-c", `LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@"`, os.Args[0]}, args...)...)
	case "pidfdid", "pidfdid+1":
		cmd = exec.Command("/bin/sh", append([]string{"-c", `read -r id; LISTEN_PID=$$; LISTEN_PIDFDID=$id; export LISTEN_PID LISTEN_PIDFDID; exec "$0" "$@"`, os.Args[0]}, args...)...)
	default:
		t.Fatalf("bad pid mode %q", spec.pid)
	}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LISTEN_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	mode := spec.mode
	if mode == "" {
		mode = "default"
	}
	cmd.Env = append(cmd.Env, childEnv+"="+mode, childCheckEnv+"="+strconv.Itoa(spec.files))
	if _, ok := os.LookupEnv("GORACE"); !ok {
		// A -race child otherwise sleeps for a second at exit.
		cmd.Env = append(cmd.Env, "GORACE=atexit_sleep_ms=0")
	}
	cmd.Env = append(cmd.Env, spec.env...)
	cmd.ExtraFiles = extra
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr

	if strings.HasPrefix(spec.pid, "pidfdid") {
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		id := childPIDFDID(t, cmd.Process.Pid)
		if spec.pid == "pidfdid+1" {
			id++
		}
		fmt.Fprintf(stdin, "%d\n", id)
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Fatalf("child: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.Bytes(), stderr.Bytes())
		}
	} else if err := cmd.Run(); err != nil {
		t.Fatalf("child: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.Bytes(), stderr.Bytes())
	}
	for _, line := range strings.Split(stdout.String(), "\n") {
		if s, ok := strings.CutPrefix(line, resultPrefix); ok {
			var r childResult
			if err := json.Unmarshal([]byte(s), &r); err != nil {
				t.Fatalf("child result %q: %v", s, err)
			}
			return r, want
		}
	}
	t.Fatalf("child printed no result\nstdout:\n%s\nstderr:\n%s", stdout.Bytes(), stderr.Bytes())
	return childResult{}, nil
}

// childPIDFDID returns the pidfd inode number of process pid, skipping the
// test where pidfs is missing (Linux < 6.9).
func childPIDFDID(t *testing.T, pid int) uint64 {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		t.Skipf("pidfd_open: %v", err)
	}
	if err != nil {
		t.Fatalf("pidfd_open(%d): %v", pid, err)
	}
	defer unix.Close(fd)
	var fs unix.Statfs_t
	if err := unix.Fstatfs(fd, &fs); err != nil {
		t.Fatal(err)
	}
	if fs.Type != 0x50494446 {
		t.Skipf("pidfds are not on pidfs (f_type %#x): kernel older than 6.9", fs.Type)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func TestReceiveInChild(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	t.Parallel()
	allTrue := func(n int) []bool {
		b := make([]bool, n)
		for i := range b {
			b[i] = true
		}
		return b
	}
	tests := []struct {
		name string
		spec childSpec
		// wantErr is a substring of the error; "" means success.
		wantErr      string
		wantNotForUs bool
		wantNames    []string
		// wantNamed maps names to indexes of the passed files.
		wantNamed map[string][]int
		// wantTouched: descriptors got FD_CLOEXEC.
		wantTouched bool
		// wantEnv lists the LISTEN_* variables expected afterwards
		// (names only; nil means all unset).
		wantEnv []string
		check   func(t *testing.T, r childResult)
	}{
		{
			name:        "names with duplicates",
			spec:        childSpec{files: 3, pid: "sh", env: []string{"LISTEN_FDS=3", "LISTEN_FDNAMES=web:db:web"}},
			wantNames:   []string{"web", "db", "web"},
			wantNamed:   map[string][]int{"web": {0, 2}, "db": {1}},
			wantTouched: true,
			wantEnv:     []string{"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"},
		},
		{
			// fdname_is_valid() refuses both names; Receive, like
			// sd_listen_fds_with_names, leaves that to the manager.
			name:        "names taken as written",
			spec:        childSpec{files: 2, pid: "sh", env: []string{"LISTEN_FDS=2", "LISTEN_FDNAMES=caf\u00e9:a\tb"}},
			wantNames:   []string{"caf\u00e9", "a\tb"},
			wantNamed:   map[string][]int{"caf\u00e9": {0}, "a\tb": {1}},
			wantTouched: true,
			wantEnv:     []string{"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"},
		},
		{
			name:        "no names means unknown",
			spec:        childSpec{files: 2, pid: "sh", env: []string{"LISTEN_FDS=2"}},
			wantNames:   []string{"unknown", "unknown"},
			wantNamed:   map[string][]int{"unknown": {0, 1}},
			wantTouched: true,
			wantEnv:     []string{"LISTEN_FDS", "LISTEN_PID"},
		},
		{
			name:    "count mismatch",
			spec:    childSpec{files: 2, pid: "sh", env: []string{"LISTEN_FDS=2", "LISTEN_FDNAMES=a:b:c"}},
			wantErr: "mismatch between LISTEN_FDS=2 and 3 LISTEN_FDNAMES entries",
			wantEnv: []string{"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"},
		},
		{
			name:         "another process's PID",
			spec:         childSpec{files: 1, env: []string{"LISTEN_FDS=1", "LISTEN_PID=1"}},
			wantErr:      "LISTEN_PID=1, but our PID is",
			wantNotForUs: true,
			wantEnv:      []string{"LISTEN_FDS", "LISTEN_PID"},
		},
		{
			name:         "no LISTEN_PID",
			spec:         childSpec{files: 1, env: []string{"LISTEN_FDS=1"}},
			wantErr:      "LISTEN_PID is not",
			wantNotForUs: true,
			wantEnv:      []string{"LISTEN_FDS"},
		},
		{
			name: "not activated",
			spec: childSpec{files: 1},
		},
		{
			name:      "zero fds",
			spec:      childSpec{pid: "sh", env: []string{"LISTEN_FDS=0"}},
			wantNames: []string{},
			wantEnv:   []string{"LISTEN_FDS", "LISTEN_PID"},
		},
		{
			name:    "fd not open",
			spec:    childSpec{files: 2, pid: "sh", env: []string{"LISTEN_FDS=64"}},
			wantErr: "LISTEN_FDS=64, but fd ",
			wantEnv: []string{"LISTEN_FDS", "LISTEN_PID"},
		},
		{
			name:        "pidfdid matches",
			spec:        childSpec{files: 2, pid: "pidfdid", env: []string{"LISTEN_FDS=2", "LISTEN_FDNAMES=stored:connection"}},
			wantNames:   []string{"stored", "connection"},
			wantNamed:   map[string][]int{"stored": {0}, "connection": {1}},
			wantTouched: true,
			wantEnv:     []string{"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "LISTEN_PIDFDID"},
		},
		{
			name:         "pidfdid mismatch",
			spec:         childSpec{files: 2, pid: "pidfdid+1", env: []string{"LISTEN_FDS=2"}},
			wantErr:      "but our pidfd inode is",
			wantNotForUs: true,
			wantEnv:      []string{"LISTEN_FDS", "LISTEN_PID", "LISTEN_PIDFDID"},
		},
		{
			name:        "UnsetEnv clears all four",
			spec:        childSpec{mode: "unset", files: 2, pid: "pidfdid", env: []string{"LISTEN_FDS=2", "LISTEN_FDNAMES=a:b"}},
			wantNames:   []string{"a", "b"},
			wantNamed:   map[string][]int{"a": {0}, "b": {1}},
			wantTouched: true,
		},
		{
			name:    "UnsetEnv on error",
			spec:    childSpec{mode: "unset", files: 2, pid: "pidfdid", env: []string{"LISTEN_FDS=2", "LISTEN_FDNAMES=a"}},
			wantErr: "mismatch between LISTEN_FDS=2 and 1 LISTEN_FDNAMES entries",
		},
		{
			name:        "second call",
			spec:        childSpec{mode: "twice", files: 1, pid: "sh", env: []string{"LISTEN_FDS=1"}},
			wantNames:   []string{"unknown"},
			wantNamed:   map[string][]int{"unknown": {0}},
			wantTouched: true,
			wantEnv:     []string{"LISTEN_FDS", "LISTEN_PID"},
			check: func(t *testing.T, r childResult) {
				if !r.SecondAlready || r.SecondLen != 0 {
					t.Errorf("second Receive: %q (ErrAlreadyReceived %v), %d files; want ErrAlreadyReceived", r.SecondErr, r.SecondAlready, r.SecondLen)
				}
			},
		},
		{
			name:        "second call after UnsetEnv",
			spec:        childSpec{mode: "twice unset", files: 1, pid: "sh", env: []string{"LISTEN_FDS=1"}},
			wantNames:   []string{"unknown"},
			wantNamed:   map[string][]int{"unknown": {0}},
			wantTouched: true,
			check: func(t *testing.T, r childResult) {
				if r.SecondErr != "" || r.SecondLen != 0 {
					t.Errorf("second Receive: %q, %d files; want an empty set", r.SecondErr, r.SecondLen)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, passed := runChild(t, tt.spec)
			if tt.wantErr != "" {
				if !strings.Contains(r.Err, tt.wantErr) {
					t.Errorf("error %q, want it to contain %q", r.Err, tt.wantErr)
				}
				if len(r.Names) != 0 {
					t.Errorf("got names %q with an error", r.Names)
				}
			} else if r.Err != "" {
				t.Errorf("unexpected error %q", r.Err)
			}
			if r.NotForUs != tt.wantNotForUs {
				t.Errorf("errors.Is(ErrNotForUs) = %v, want %v", r.NotForUs, tt.wantNotForUs)
			}
			if tt.wantErr == "" && !reflect.DeepEqual(r.Names, tt.wantNames) && (len(r.Names) != 0 || len(tt.wantNames) != 0) {
				t.Errorf("Names() = %q, want %q", r.Names, tt.wantNames)
			}
			if len(r.FileNames)+len(r.Names) > 0 && !reflect.DeepEqual(r.FileNames, r.Names) {
				t.Errorf("file names %q differ from Names() %q", r.FileNames, r.Names)
			}
			if tt.wantErr == "" {
				wantInodes := passed[:len(tt.wantNames)]
				if len(wantInodes) > 0 && !reflect.DeepEqual(r.Inodes, wantInodes) {
					t.Errorf("received files %q, passed %q", r.Inodes, wantInodes)
				}
			}
			for name, idx := range tt.wantNamed {
				var want []string
				for _, i := range idx {
					want = append(want, passed[i])
				}
				if !reflect.DeepEqual(r.Named[name], want) {
					t.Errorf("Named(%q) = %q, want %q", name, r.Named[name], want)
				}
			}
			if want := make([]bool, tt.spec.files); !reflect.DeepEqual(r.CloexecBefore, want) {
				t.Errorf("FD_CLOEXEC before Receive = %v, want %v (harness problem)", r.CloexecBefore, want)
			}
			wantAfter := make([]bool, tt.spec.files)
			if tt.wantTouched {
				wantAfter = allTrue(tt.spec.files)
			}
			if !reflect.DeepEqual(r.CloexecAfter, wantAfter) {
				t.Errorf("FD_CLOEXEC after Receive = %v, want %v", r.CloexecAfter, wantAfter)
			}
			var gotEnv []string
			for _, k := range listenVars {
				if r.Env[k] != nil {
					gotEnv = append(gotEnv, k)
				}
			}
			if !reflect.DeepEqual(gotEnv, tt.wantEnv) {
				t.Errorf("LISTEN_* set after Receive: %q, want %q", gotEnv, tt.wantEnv)
			}
			if tt.check != nil {
				tt.check(t, r)
			}
		})
	}
}

// The cases below fail before any descriptor is touched, so they can run in
// the test process itself.
func TestReceiveInProcess(t *testing.T) {
	pid := strconv.Itoa(os.Getpid())
	tests := []struct {
		name         string
		env          map[string]string // "" value with unset below
		wantErr      string
		wantNotForUs bool
	}{
		{name: "not activated"},
		{name: "other pid", env: map[string]string{"LISTEN_FDS": "1", "LISTEN_PID": "1"}, wantErr: "LISTEN_PID=1", wantNotForUs: true},
		{name: "no pid", env: map[string]string{"LISTEN_FDS": "1"}, wantErr: "LISTEN_PID is not", wantNotForUs: true},
		{name: "malformed count", env: map[string]string{"LISTEN_FDS": "three", "LISTEN_PID": pid}, wantErr: "malformed LISTEN_FDS=\"three\""},
		{name: "mismatch", env: map[string]string{"LISTEN_FDS": "1", "LISTEN_PID": pid, "LISTEN_FDNAMES": "a:b"}, wantErr: "mismatch"},
		{name: "pidfdid mismatch", env: map[string]string{"LISTEN_FDS": "1", "LISTEN_PID": pid, "LISTEN_PIDFDID": "1"}, wantErr: "LISTEN_PIDFDID=1", wantNotForUs: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range listenVars {
				t.Setenv(k, "")
				os.Unsetenv(k)
			}
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			if tt.name == "pidfdid mismatch" {
				if id, ok := ownPIDFDIDForTest(t); !ok || id == 1 {
					t.Skip("no pidfs")
				}
			}
			files, err := activation.Receive(nil)
			if tt.wantErr == "" {
				if err != nil || files.Len() != 0 {
					t.Fatalf("Receive = %v files, %v; want an empty set", files.Len(), err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || files != nil {
				t.Fatalf("Receive = %v, %v; want error containing %q", files, err, tt.wantErr)
			}
			if errors.Is(err, activation.ErrNotForUs) != tt.wantNotForUs {
				t.Errorf("errors.Is(%v, ErrNotForUs) = %v", err, !tt.wantNotForUs)
			}
		})
	}
}

func ownPIDFDIDForTest(t *testing.T) (uint64, bool) {
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return 0, false
	}
	defer unix.Close(fd)
	var fs unix.Statfs_t
	if unix.Fstatfs(fd, &fs) != nil || fs.Type != 0x50494446 {
		return 0, false
	}
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		return 0, false
	}
	return st.Ino, true
}
