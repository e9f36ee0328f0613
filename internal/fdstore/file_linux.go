package fdstore

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/liveupdate/luo"
	"github.com/liveupdate/luo/memfd"
)

// fDupfdQuery is F_DUPFD_QUERY (Linux 6.10): fcntl(a, F_DUPFD_QUERY, b)
// returns 1 when a and b share one open file description.
const fDupfdQuery = 1027

// SameFile reports whether a and b are the same open file description
// (systemd's same_fd): F_DUPFD_QUERY where the kernel has it; otherwise
// the same inode, open flags and offset. It never changes the files (no
// (*os.File).Fd, which would clear O_NONBLOCK on a shared description).
func SameFile(a, b *os.File) bool {
	same := false
	withFd(a, func(fa int) {
		withFd(b, func(fb int) { same = sameFd(fa, fb) })
	})
	return same
}

func sameFd(fa, fb int) bool {
	if fa == fb {
		return true
	}
	if r, err := unix.FcntlInt(uintptr(fa), fDupfdQuery, fb); err == nil {
		return r == 1
	}
	var sa, sb unix.Stat_t
	if unix.Fstat(fa, &sa) != nil || unix.Fstat(fb, &sb) != nil {
		return false
	}
	if sa.Dev != sb.Dev || sa.Ino != sb.Ino {
		return false
	}
	fla, _ := unix.FcntlInt(uintptr(fa), unix.F_GETFL, 0)
	flb, _ := unix.FcntlInt(uintptr(fb), unix.F_GETFL, 0)
	pa, _ := unix.Seek(fa, 0, 1)
	pb, _ := unix.Seek(fb, 0, 1)
	return fla == flb && pa == pb
}

// withFd runs fn with f's fd number, keeping it valid during the call; it
// does nothing for a nil or closed file.
func withFd(f *os.File, fn func(fd int)) {
	if f == nil {
		return
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) { fn(int(fd)) })
}

// fileKey identifies an inode.
type fileKey struct{ dev, ino uint64 }

func keyOf(f *os.File) fileKey {
	var k fileKey
	withFd(f, func(fd int) {
		var st unix.Stat_t
		if unix.Fstat(fd, &st) == nil {
			k = fileKey{uint64(st.Dev), st.Ino}
		}
	})
	return k
}

// Info describes a stored file like `systemd-analyze fdstore` does, with
// the facts a live update needs.
type Info struct {
	Type  string // reg, dir, chr, blk, fifo, sock, lnk, or memfd, luo-session, anon
	Dev   [2]uint32
	Inode uint64
	RDev  *[2]uint32
	Path  string
	Flags string
	Size  int64
	// Session is the LUO session's name when Type is "luo-session", and
	// Incoming tells its direction.
	Session  string
	Incoming bool
	// Unpreservable is nil when LUO can preserve the file (a memfd or an
	// unlinked tmpfs file); otherwise it says what the file is instead
	// (luo.CheckPreservable). A LUO session is never preservable: it is
	// carried by keeping its fd open.
	Unpreservable error
}

// Describe inspects f without changing it. It opens nothing that outlives
// the call.
func Describe(f *os.File) (Info, error) {
	var info Info
	rc, err := f.SyscallConn()
	if err != nil {
		return info, err
	}
	var opErr error
	if err := rc.Control(func(fd uintptr) {
		var st unix.Stat_t
		if opErr = unix.Fstat(int(fd), &st); opErr != nil {
			return
		}
		info.Dev = [2]uint32{unix.Major(st.Dev), unix.Minor(st.Dev)}
		info.Inode = st.Ino
		info.Size = st.Size
		if st.Mode&unix.S_IFMT == unix.S_IFCHR || st.Mode&unix.S_IFMT == unix.S_IFBLK {
			info.RDev = &[2]uint32{unix.Major(st.Rdev), unix.Minor(st.Rdev)}
		}
		info.Type = typeName(st.Mode)
		if info.Type == "reg" && st.Nlink == 0 && isMemfdDev(uint64(st.Dev)) {
			info.Type = "memfd"
		}
		info.Path, _ = os.Readlink("/proc/self/fd/" + strconv.Itoa(int(fd)))
		if fl, err := unix.FcntlInt(fd, unix.F_GETFL, 0); err == nil {
			info.Flags = flagString(fl)
		}
	}); err != nil {
		return info, err
	}
	if opErr != nil {
		return info, fmt.Errorf("fdstore: describe %s: %w", f.Name(), opErr)
	}
	switch {
	case strings.HasPrefix(info.Path, "/memfd:"):
		info.Type = "memfd"
	case strings.HasPrefix(info.Path, "anon_inode:"):
		info.Type = "anon"
		info.Size = 0
	}
	if luo.IsSession(f) {
		name, incoming, err := sessionFacts(f)
		if err != nil {
			return info, fmt.Errorf("fdstore: describe %s: %w", f.Name(), err)
		}
		info.Type, info.Session, info.Incoming = "luo-session", name, incoming
	}
	info.Unpreservable = luo.CheckPreservable(f)
	return info, nil
}

// shmDev is the device of the kernel's internal shmem mount, 0 when unknown.
var shmDev = sync.OnceValue(func() uint64 {
	f, err := memfd.New("luod-probe", 0)
	if err != nil {
		return 0
	}
	defer f.Close()
	var st unix.Stat_t
	withFd(f, func(fd int) {
		if unix.Fstat(fd, &st) != nil {
			st.Dev = 0
		}
	})
	return uint64(st.Dev)
})

// isMemfdDev reports whether dev is the kernel's internal shmem mount,
// where every memfd lives: one from memfd_create, whose /proc link reads
// "/memfd:NAME (deleted)", and one LUO restored after a kexec, which the
// kernel creates without a name (its link reads "/ (deleted)"). No other
// file an fd store can hold lives there, and the memfd files of the
// mount are always unlinked. (The others there, anonymous shared memory
// and SysV segments, are the same kind of shmem file and only reachable
// through /proc/PID/map_files.)
func isMemfdDev(dev uint64) bool { return dev != 0 && dev == shmDev() }

// sessionFacts returns the name and direction of the LUO session f,
// probing a duplicate of it that is closed again before it returns.
func sessionFacts(f *os.File) (name string, incoming bool, err error) {
	d, err := dupOf(f)
	if err != nil {
		return "", false, err
	}
	s, err := luo.SessionFromFile(d)
	if err != nil {
		d.Close()
		return "", false, err
	}
	defer s.Close() // closes d; f keeps the session alive
	return s.Name(), s.Incoming(), nil
}

// dupOf returns a CLOEXEC duplicate of f, for probing.
func dupOf(f *os.File) (*os.File, error) {
	var d *os.File
	err := os.ErrClosed
	withFd(f, func(fd int) {
		var nfd int
		if nfd, err = unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3); err == nil {
			d = os.NewFile(uintptr(nfd), f.Name())
		}
	})
	return d, err
}

func typeName(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "reg"
	case unix.S_IFDIR:
		return "dir"
	case unix.S_IFCHR:
		return "chr"
	case unix.S_IFBLK:
		return "blk"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFSOCK:
		return "sock"
	case unix.S_IFLNK:
		return "lnk"
	}
	return "unknown"
}

func flagString(fl int) string {
	var s string
	switch fl & unix.O_ACCMODE {
	case unix.O_RDONLY:
		s = "ro"
	case unix.O_WRONLY:
		s = "wo"
	default:
		s = "rw"
	}
	if fl&unix.O_NONBLOCK != 0 {
		s += ",nonblock"
	}
	if fl&unix.O_APPEND != 0 {
		s += ",append"
	}
	return s
}
