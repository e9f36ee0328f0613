//go:build linux

package supervisor

import (
	"errors"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/liveupdate/luo/internal/unit"
)

// outputGrace is how long the pipes of a unit that stopped are still read:
// its processes are gone with it (its cgroup is killed), so the pipes end
// at once; a writer that escaped the unit (no cgroups) loses them after
// this long, rather than keep an fd of luod's open for good.
const outputGrace = 5 * time.Second

// reader reads one pipe of a unit's output in a goroutine of its own.
type reader struct {
	o      *output
	f      *os.File // the read end, non-blocking: deadlines stop a Read
	stream string
	done   chan struct{} // closed when the goroutine ends

	// Under o.mu:
	pausing bool      // the goroutine is asked to stop and keep f (re-exec)
	closeAt time.Time // the unit stopped: give up on f at this time
}

// pipe makes a pipe for the unit's stream ("stdout" or "stderr") and
// starts reading it. It returns the write end, blocking, for the child;
// the caller closes it once the child has it.
func (o *output) pipe(stream string) (*os.File, error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, os.NewSyscallError("pipe2", err)
	}
	if err := unix.SetNonblock(p[0], true); err != nil {
		unix.Close(p[0])
		unix.Close(p[1])
		return nil, os.NewSyscallError("fcntl", err)
	}
	o.read(os.NewFile(uintptr(p[0]), stream+" of "+o.unit), stream)
	return os.NewFile(uintptr(p[1]), stream+" of "+o.unit), nil
}

// read starts reading f, a non-blocking read end, which the reader owns
// from now on.
func (o *output) read(f *os.File, stream string) {
	r := &reader{o: o, f: f, stream: stream, done: make(chan struct{})}
	o.mu.Lock()
	o.readers[r] = struct{}{}
	o.mu.Unlock()
	go r.run()
}

func (r *reader) run() {
	defer close(r.done)
	var sp splitter
	buf := make([]byte, maxLineBytes)
	emit := func(b []byte) { r.o.add(newLine(time.Now(), r.stream, b)) }
	for {
		n, err := r.f.Read(buf)
		sp.write(buf[:n], emit)
		if err == nil {
			continue
		}
		sp.flush(emit)
		r.o.mu.Lock()
		keep := r.pausing && errors.Is(err, os.ErrDeadlineExceeded)
		if !keep {
			delete(r.o.readers, r)
		}
		r.o.mu.Unlock()
		if keep {
			return
		}
		r.f.Close()
		if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrDeadlineExceeded) {
			r.o.log.Warn("reading the unit's output failed", LogKeyUnit, r.o.unit, LogKeyStream, r.stream, "err", err)
		}
		return
	}
}

// release gives the pipes read now outputGrace to end: the unit stopped.
// Called in the loop.
func (o *output) release() {
	at := time.Now().Add(outputGrace)
	o.mu.Lock()
	defer o.mu.Unlock()
	for r := range o.readers {
		r.closeAt = at
		r.f.SetReadDeadline(at)
	}
}

// pause stops the readers, leaving what is not read yet in the pipes, and
// returns them; each still holds its pipe (re-exec). Called in the loop.
func (o *output) pause() []*reader {
	o.mu.Lock()
	var rs []*reader
	for r := range o.readers {
		r.pausing = true
		r.f.SetReadDeadline(time.Unix(1, 0))
		rs = append(rs, r)
	}
	o.mu.Unlock()
	for _, r := range rs {
		<-r.done
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	rs = rs[:0]
	for r := range o.readers {
		rs = append(rs, r)
	}
	return rs
}

// resume reads the paused pipes again (a re-exec failed).
func (o *output) resume() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for r := range o.readers {
		if !r.pausing {
			continue
		}
		r.pausing = false
		r.done = make(chan struct{})
		r.f.SetReadDeadline(r.closeAt)
		go r.run()
	}
}

// outputFiles returns the child's stdout and stderr for spawn: pipes read
// by the unit's output, luod's own or /dev/null, as StandardOutput= and
// StandardError= say. The caller closes the returned pipes' write ends
// once the child has them.
func (u *Unit) outputFiles(null *os.File) (stdout, stderr uintptr, pipes []*os.File, err error) {
	stdout, stderr = os.Stdout.Fd(), os.Stderr.Fd()
	d := u.def
	for _, s := range []struct {
		stream string
		fd     *uintptr
		to     unit.Output
	}{{"stdout", &stdout, d.StandardOutput}, {"stderr", &stderr, d.EffectiveStandardError()}} {
		switch s.to {
		case unit.OutputJournal:
			w, err := u.out.pipe(s.stream)
			if err != nil {
				closeFiles(pipes)
				return 0, 0, nil, err
			}
			pipes = append(pipes, w)
			*s.fd = w.Fd()
		case unit.OutputNull:
			*s.fd = null.Fd()
		}
	}
	return stdout, stderr, pipes, nil
}

func closeFiles(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}
