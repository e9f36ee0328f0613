package sdnotify_test

import (
	"context"
	"errors"
	"log"
	"os"
	"time"

	"github.com/liveupdate/luo/sdnotify"
)

// A Type=notify service reports readiness, and stores a memfd-backed region
// in its fd store (the unit needs FileDescriptorStoreMax=1 or more).
func Example() {
	n, err := sdnotify.Open()
	if err != nil && !errors.Is(err, sdnotify.ErrNoSocket) {
		log.Fatal(err)
	}
	defer n.Close() // n may be nil: every method then returns ErrNoSocket

	var region *os.File // e.g. a memfd holding state to keep across restarts
	if region != nil {
		if err := n.StoreFiles("state", []*os.File{region}, &sdnotify.StoreOptions{NoPoll: true}); err != nil && !errors.Is(err, sdnotify.ErrNoSocket) {
			log.Fatal(err)
		}
	}
	if err := n.Ready(); err != nil && !errors.Is(err, sdnotify.ErrNoSocket) {
		log.Fatal(err)
	}
}

// Barrier makes sure the manager has seen earlier notifications, for example
// before a helper process that sent them exits.
func ExampleNotifier_Barrier() {
	n, err := sdnotify.Open()
	if err != nil {
		return
	}
	defer n.Close()
	n.Status("flushing")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.Barrier(ctx); err != nil {
		log.Print(err)
	}
}
