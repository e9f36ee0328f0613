//go:build linux

package keep_test

import (
	"errors"
	"fmt"
	"log"
	"net"
	"os"

	"github.com/liveupdate/luo/keep"
)

// A service keeps a region. Run without a service manager, as here, the
// region is fresh at every start; under luod or systemd (with
// FileDescriptorStoreMax= and FileDescriptorStorePreserve=yes) it comes back
// with Origin FDStore after a restart and LUO after a kernel live update.
func Example() {
	os.Unsetenv("NOTIFY_SOCKET")
	st, err := keep.Open(nil)
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	r, err := st.Region("cache", 1<<20)
	if err != nil {
		log.Fatal(err)
	}
	b, err := r.Bytes()
	if err != nil {
		log.Fatal(err)
	}
	if r.Origin == keep.Fresh {
		copy(b, "initial state")
	}
	fmt.Println(r.Name, r.Origin, len(b), st.Mode())
	// Output: cache fresh 1048576 none
}

// A kept region cannot change size: errors.Is tells the caller which
// failure it has.
func ExampleStore_Region_errors() {
	os.Unsetenv("NOTIFY_SOCKET")
	st, err := keep.Open(nil)
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Region("cache", 4096); err != nil {
		log.Fatal(err)
	}
	_, err = st.Region("cache", 8192)
	fmt.Println(errors.Is(err, keep.ErrSizeChanged))
	_, err = st.Region(keep.IndexName, 4096)
	fmt.Println(errors.Is(err, keep.ErrBadName))
	fmt.Println(errors.Is(st.Remove("other"), keep.ErrNotFound))
	// Output:
	// true
	// true
	// true
}

// A listening socket kept next to the regions: the next instance of the
// service gets it back from File instead of binding again, so no
// connection is refused during a restart.
func ExampleStore_Keep() {
	st, err := keep.Open(nil)
	if err != nil {
		log.Fatal(err)
	}
	f := st.File("listener")
	if f == nil {
		l, err := net.Listen("tcp", "127.0.0.1:8080")
		if err != nil {
			log.Fatal(err)
		}
		if f, err = l.(*net.TCPListener).File(); err != nil {
			log.Fatal(err)
		}
		l.Close()
		if err := st.Keep("listener", f, nil); errors.Is(err, keep.ErrStoreFull) {
			log.Fatal("raise FileDescriptorStoreMax= of the unit: ", err)
		} else if err != nil {
			log.Fatal(err)
		}
	}
	l, err := net.FileListener(f)
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	// serve(l)
}

// Mode says how the regions cross the next kernel live update.
func ExampleStore_Mode() {
	for _, m := range []keep.Mode{keep.ModeNone, keep.ModeFDStore, keep.ModeSession, keep.ModeOwnSession} {
		fmt.Println(m)
	}
	// Output:
	// none
	// fd-store
	// session
	// own-session
}
