//go:build linux

package supervisor

import (
	"context"
	"errors"
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
}

type waiter struct {
	pred func() bool
	ch   chan struct{}
}

// do runs fn in the loop and waits for it. It must not be called from the
// loop itself.
func (m *Manager) do(fn func()) {
	done := make(chan struct{})
	m.events <- funcEvent{fn, done}
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

// startReceivers starts the goroutines that feed the loop: notify messages
// and fd-store poll events.
func (m *Manager) startReceivers() {
	ctx, cancel := context.WithCancel(context.Background())
	m.stopReceivers = cancel
	m.receivers = make(chan struct{}, 2)
	go func() {
		defer func() { m.receivers <- struct{}{} }()
		for {
			msg, err := m.notify.Receive(ctx)
			var drop *notify.DropError
			switch {
			case err == nil:
				m.events <- msg
			case errors.As(err, &drop):
				m.log.Warn("notify: "+drop.Error(), "pid", drop.PID)
			case ctx.Err() != nil, errors.Is(err, net.ErrClosed):
				return
			default:
				m.log.Error("notify socket failed", "err", err)
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

// pauseReceivers stops the receiver goroutines and handles what they had
// already queued, so that nothing read from the notify socket is lost
// (re-exec). Called from the loop.
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
