package supervisor

import (
	"io"
	"sync"
)

// maxClosers bounds the goroutines closing files at once; beyond it,
// files wait in a queue. A close that blocks holds one thread.
const maxClosers = 256

// closer closes files off the loop: close(2) can block, for as long as
// the service that handed luod the file chooses (a socket lingering on
// unsent data, SO_LINGER; a file on a hung network file system). systemd
// closes such fds asynchronously too. Safe for concurrent use.
type closer struct {
	mu      sync.Mutex
	running int
	queue   []io.Closer
}

// close closes f soon, never blocking the caller.
func (c *closer) close(f io.Closer) {
	c.mu.Lock()
	if c.running >= maxClosers {
		c.queue = append(c.queue, f)
		c.mu.Unlock()
		return
	}
	c.running++
	c.mu.Unlock()
	go c.run(f)
}

func (c *closer) run(f io.Closer) {
	for f != nil {
		f.Close()
		c.mu.Lock()
		f = nil
		if len(c.queue) > 0 {
			f, c.queue = c.queue[0], c.queue[1:]
		} else {
			c.running--
		}
		c.mu.Unlock()
	}
}
