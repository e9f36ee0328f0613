package supervisor

import (
	"sync/atomic"
	"testing"
	"time"
)

// busy reports whether files are being closed or wait to be.
func (c *closer) busy() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.running > 0
}

// blocking is a file whose Close blocks until released.
type blocking struct {
	release <-chan struct{}
	closed  *atomic.Int64
}

func (b blocking) Close() error {
	<-b.release
	b.closed.Add(1)
	return nil
}

// TestCloserNeverBlocks: closes that block do not block the caller, at
// most maxClosers run at once, and every queued one runs once others end.
func TestCloserNeverBlocks(t *testing.T) {
	var c closer
	release := make(chan struct{})
	var closed atomic.Int64
	n := maxClosers + 100
	start := time.Now()
	for range n {
		c.close(blocking{release, &closed})
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("queuing %d blocking closes took %v", n, took)
	}
	c.mu.Lock()
	running, queued := c.running, len(c.queue)
	c.mu.Unlock()
	if running != maxClosers || queued != 100 {
		t.Errorf("%d running and %d queued, want %d and 100", running, queued, maxClosers)
	}
	close(release)
	for deadline := time.Now().Add(10 * time.Second); c.busy(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("closes never finished")
		}
	}
	if closed.Load() != int64(n) {
		t.Errorf("%d closed, want %d", closed.Load(), n)
	}
}
