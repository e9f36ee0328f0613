package activation_test

import (
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"strconv"

	"github.com/liveupdate/luo/activation"
)

// A service takes the descriptors its manager passed, once, early in main:
// a listening socket of socket activation and, after a restart, the state it
// put in its fd store (see package sdnotify). UnsetEnv keeps child processes
// from inheriting LISTEN_*.
func ExampleReceive() {
	files, err := activation.Receive(&activation.Config{UnsetEnv: true})
	if err != nil && !errors.Is(err, activation.ErrNotForUs) {
		log.Fatal(err) // a malformed environment: the manager is broken
	}

	var ln net.Listener
	if http := files.Named("http"); len(http) > 0 {
		ln, err = net.FileListener(http[0]) // takes a duplicate
		http[0].Close()
	} else {
		ln, err = net.Listen("tcp", "localhost:8080") // started by hand
	}
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()

	// An fd store can hold several entries of one name (a service that
	// stored its state twice), in no stable order.
	switch state := files.Named("state"); len(state) {
	case 0:
		fmt.Println("no stored state: starting fresh")
	case 1:
		fmt.Println("restoring the stored state")
		defer state[0].Close()
	default:
		log.Fatalf("%d fds named state in the fd store, want one", len(state))
	}
}

// A process whose parent was started with descriptors inherits the LISTEN_*
// variables, but the descriptors are not its own: Receive says so with
// ErrNotForUs, without touching any descriptor, and the process carries on
// without them, as libsystemd does. With UnsetEnv the variables are gone
// afterwards, so its own children do not inherit them either.
func ExampleReceive_notForUs() {
	defer inheritListenEnv()() // LISTEN_PID is our parent's PID

	files, err := activation.Receive(&activation.Config{UnsetEnv: true})
	switch {
	case errors.Is(err, activation.ErrNotForUs):
		fmt.Println("the passed descriptors are for another process")
	case err != nil:
		log.Fatal(err)
	}
	fmt.Println(files.Len(), "files") // a nil *Files is an empty set
	_, set := os.LookupEnv("LISTEN_FDS")
	fmt.Println("LISTEN_FDS set:", set)
	// Output:
	// the passed descriptors are for another process
	// 0 files
	// LISTEN_FDS set: false
}

// ParseNames splits $LISTEN_FDNAMES: names are not unique, and the manager
// writes an empty field for an fd stored with an empty FDNAME=.
func ExampleParseNames() {
	names, err := activation.ParseNames("http:state:state::control")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d names: %q\n", len(names), names)
	// Output: 5 names: ["http" "state" "state" "" "control"]
}

// inheritListenEnv sets LISTEN_* as a manager set them for our parent and
// returns a function that restores the environment.
func inheritListenEnv() (restore func()) {
	old := map[string]string{}
	for _, k := range []string{"LISTEN_FDS", "LISTEN_FDNAMES", "LISTEN_PID", "LISTEN_PIDFDID"} {
		if v, ok := os.LookupEnv(k); ok {
			old[k] = v
		}
		os.Unsetenv(k)
	}
	os.Setenv("LISTEN_FDS", "2")
	os.Setenv("LISTEN_FDNAMES", "http:state")
	os.Setenv("LISTEN_PID", strconv.Itoa(os.Getppid()))
	return func() {
		for _, k := range []string{"LISTEN_FDS", "LISTEN_FDNAMES", "LISTEN_PID", "LISTEN_PIDFDID"} {
			if v, ok := old[k]; ok {
				os.Setenv(k, v)
			} else {
				os.Unsetenv(k)
			}
		}
	}
}
