//go:build linux

package supervisor

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"sort"

	"github.com/liveupdate/luo/internal/notify"
)

// event is something the loop handles.
type event interface{}

type funcEvent struct {
	fn   func()
	done chan struct{}
	// quiet: fn only reads, so the event is no change (Config.Changed).
	quiet bool
}

type waiter struct {
	pred func() bool
	ch   chan struct{}
}

// do runs fn in the loop and waits for it. It must not be called from the
// loop itself.
func (m *Manager) do(fn func()) {
	done := make(chan struct{})
	m.events <- funcEvent{fn: fn, done: done}
	<-done
}

// read is do for an fn that changes nothing.
func (m *Manager) read(fn func()) {
	done := make(chan struct{})
	m.events <- funcEvent{fn: fn, done: done, quiet: true}
	<-done
}

// waitFor waits until pred, evaluated in the loop after every event, holds,
// or ctx is done.
func (m *Manager) waitFor(ctx context.Context, pred func() bool) error {
	w := &waiter{pred: pred, ch: make(chan struct{})}
	m.do(func() {
		if pred() {
			close(w.ch)
			return
		}
		m.waiters = append(m.waiters, w)
	})
	select {
	case <-w.ch:
		return nil
	case <-ctx.Done():
		m.do(func() {
			if i := slices.Index(m.waiters, w); i >= 0 {
				m.waiters = slices.Delete(m.waiters, i, i+1)
			}
		})
		select {
		case <-w.ch:
			return nil
		default:
		}
		return ctx.Err()
	}
}

func (m *Manager) checkWaiters() {
	m.waiters = slices.DeleteFunc(m.waiters, func(w *waiter) bool {
		if w.pred() {
			close(w.ch)
			return true
		}
		return false
	})
}

// startReceivers starts the goroutines that feed the loop: one tells it
// when the notify socket has datagrams (the loop reads them itself, see
// drainNotify), the other passes on fd-store poll events.
func (m *Manager) startReceivers() {
	ctx, cancel := context.WithCancel(context.Background())
	m.stopReceivers = cancel
	m.receivers = make(chan struct{}, 2)
	go func() {
		defer func() { m.receivers <- struct{}{} }()
		for {
			if err := m.notify.WaitReadable(ctx); err != nil {
				if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
					m.log.Error("notify socket failed", "err", err)
				}
				return
			}
			drained := make(chan struct{})
			select {
			case m.events <- notifyReadable{drained}:
			case <-ctx.Done():
				return
			}
			select {
			case <-drained:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() {
		defer func() { m.receivers <- struct{}{} }()
		for {
			evs, err := m.poller.Wait(ctx)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				m.log.Error("fd store poller failed", "err", err)
				return
			}
			if len(evs) > 0 {
				m.events <- evs
			}
		}
	}()
}

// notifyReadable tells the loop that the notify socket has datagrams; the
// loop closes drained once it read them.
type notifyReadable struct{ drained chan struct{} }

// maxDrain bounds how many datagrams one drainNotify reads, so that a
// flood cannot hold the loop; it is more than the socket queues at once
// (net.unix.max_dgram_qlen is 512 by default), so every datagram queued
// when drainNotify starts is read.
const maxDrain = 4096

// drainNotify reads and handles the datagrams queued on the notify socket.
// The loop is the only reader of the socket, so what a service sent before
// it exited is handled before its exit is (see reap's callers): the
// datagram is queued before the process can exit. Called in the loop.
func (m *Manager) drainNotify() {
	for range maxDrain {
		msg, err := m.notify.TryReceive()
		var drop *notify.DropError
		switch {
		case errors.As(err, &drop):
			// Within the sender's unit's log limit, when it has one: a
			// flood from elsewhere must not hide it.
			if u := m.owner(drop.PID); u != nil {
				u.say(slog.LevelWarn, drop.Error(), "pid", drop.PID)
			} else {
				m.stranger(slog.LevelWarn, drop.Error(), "pid", drop.PID)
			}
			continue
		case err != nil:
			if !errors.Is(err, net.ErrClosed) {
				m.log.Error("notify socket failed", "err", err)
			}
			return
		case msg == nil:
			return
		}
		m.handleNotify(msg)
	}
}

// pauseReceivers stops the receiver goroutines and handles what they had
// already queued (re-exec); what is left on the notify socket stays there
// for the next luod. Called from the loop.
func (m *Manager) pauseReceivers() {
	m.stopReceivers()
	for n := 0; n < 2; {
		select {
		case <-m.receivers:
			n++
		case ev := <-m.events:
			m.dispatch(ev)
		}
	}
	for {
		select {
		case ev := <-m.events:
			m.dispatch(ev)
		default:
			return
		}
	}
}

// sortedUnits returns the units by name.
func (m *Manager) sortedUnits() []*Unit {
	us := make([]*Unit, 0, len(m.units))
	for _, u := range m.units {
		us = append(us, u)
	}
	sort.Slice(us, func(i, j int) bool { return us[i].name < us[j].name })
	return us
}
