package fdstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Poller watches stored fds for POLLHUP and POLLERR, as systemd does for
// entries stored without FDPOLL=0: the peer of a stored socket or pipe went
// away, so the entry is useless and is dropped. One epoll instance serves
// every store. Safe for concurrent use.
type Poller struct {
	ep *os.File // the epoll fd, registered with Go's poller for readiness

	mu      sync.Mutex
	watched map[uint64]int // entry ID -> fd registered
	ids     map[int]uint64 // fd registered -> entry ID
}

// NewPoller returns a Poller.
func NewPoller() (*Poller, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("fdstore: epoll_create1: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("fdstore: %w", err)
	}
	return &Poller{ep: os.NewFile(uintptr(fd), "epoll"), watched: map[uint64]int{}, ids: map[int]uint64{}}, nil
}

// Watch starts watching e's file. It reports false, without error, for a
// file that cannot be polled (regular files, memfds), which is kept
// unwatched as systemd does.
func (p *Poller) Watch(e *Entry) (bool, error) {
	var err error
	withFd(e.File, func(fd int) {
		// No events requested: EPOLLHUP and EPOLLERR are always reported.
		ev := unix.EpollEvent{Events: 0, Fd: int32(fd)}
		p.mu.Lock()
		defer p.mu.Unlock()
		if err = p.ctl(unix.EPOLL_CTL_ADD, fd, &ev); err == nil {
			p.watched[e.ID] = fd
			p.ids[fd] = e.ID
		}
	})
	if errors.Is(err, unix.EPERM) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("fdstore: watch %q: %w", e.Name, err)
	}
	return true, nil
}

// Unwatch stops watching e; call it before closing e's file.
func (p *Poller) Unwatch(e *Entry) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if fd, ok := p.watched[e.ID]; ok {
		p.ctl(unix.EPOLL_CTL_DEL, fd, nil)
		delete(p.watched, e.ID)
		delete(p.ids, fd)
	}
}

func (p *Poller) ctl(op, fd int, ev *unix.EpollEvent) error {
	var err error
	withFd(p.ep, func(ep int) { err = unix.EpollCtl(ep, op, fd, ev) })
	return err
}

// Event is a HUP or ERR on a watched entry.
type Event struct {
	ID  uint64
	Hup bool
	Err bool
}

// Wait blocks until watched entries report POLLHUP or POLLERR, or ctx is
// done, and returns the events. An entry keeps reporting until Unwatch.
func (p *Poller) Wait(ctx context.Context) ([]Event, error) {
	rc, err := p.ep.SyscallConn()
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { p.ep.SetReadDeadline(time.Now()) })
	defer stop()
	var out []Event
	var waitErr error
	err = rc.Read(func(fd uintptr) bool {
		var evs [64]unix.EpollEvent
		n, err := unix.EpollWait(int(fd), evs[:], 0)
		if err == unix.EINTR || n == 0 {
			return false // not ready: park on the Go poller
		}
		if err != nil {
			waitErr = err
			return true
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, ev := range evs[:n] {
			id, ok := p.ids[int(ev.Fd)]
			if !ok {
				continue // unwatched meanwhile
			}
			out = append(out, Event{ID: id, Hup: ev.Events&unix.EPOLLHUP != 0, Err: ev.Events&unix.EPOLLERR != 0})
		}
		return true
	})
	if ctx.Err() != nil {
		p.ep.SetReadDeadline(time.Time{})
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, fmt.Errorf("fdstore: epoll: %w", err)
	}
	return out, waitErr
}

// Close closes the epoll instance.
func (p *Poller) Close() error { return p.ep.Close() }
