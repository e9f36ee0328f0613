//go:build linux

package supervisor_test

import (
	"path/filepath"
	"testing"

	"github.com/liveupdate/luo/internal/luodtest"
	"github.com/liveupdate/luo/sdnotify"
)

// notifyFromOutside sends READY=1 from the test process, which belongs to
// no unit.
func notifyFromOutside(t *testing.T, d *luodtest.Daemon) *sdnotify.Notifier {
	n, err := sdnotify.OpenAddr(filepath.Join(d.Runtime, "notify"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	if err := n.Ready(); err != nil {
		t.Fatal(err)
	}
	return n
}
