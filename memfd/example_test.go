//go:build linux

package memfd_test

import (
	"errors"
	"fmt"
	"log"

	"golang.org/x/sys/unix"

	"github.com/liveupdate/luo/memfd"
)

// A memfd meant for a live update is created at its final size: once it is
// preserved in a LUO session its size is frozen.
func ExampleNew() {
	f, err := memfd.New("cache", 64<<10)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()

	size, err := memfd.Size(f)
	if err != nil {
		log.Fatal(err)
	}
	seals, err := memfd.GetSeals(f)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(f.Name(), size, "bytes, seals:", seals)
	// Output: memfd:cache 65536 bytes, seals: none
}

// A service keeps its state in the shared mapping of a memfd: what the pages
// hold at the moment of a kexec is what the next kernel gets, with no flush.
// Reading the file shows the same bytes.
func ExampleMap() {
	f, err := memfd.New("counter", 4096)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()

	b, err := memfd.Map(f)
	if err != nil {
		log.Fatal(err)
	}
	defer memfd.Unmap(b)
	copy(b, "generation 1")

	buf := make([]byte, len("generation 1"))
	if _, err := f.ReadAt(buf, 0); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("mapped %d bytes, the file reads %q\n", len(b), buf)
	// Output: mapped 4096 bytes, the file reads "generation 1"
}

// Sealing makes a memfd immutable, for example a configuration snapshot
// handed to another process. A write seal needs every writable mapping gone
// first; the seals survive a live update.
func ExampleAddSeals() {
	f, err := memfd.New("config", 4096)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()

	b, err := memfd.Map(f)
	if err != nil {
		log.Fatal(err)
	}
	copy(b, "mode=fast")
	err = memfd.AddSeals(f, memfd.SealWrite)
	fmt.Println("write seal while mapped writable:", errors.Is(err, unix.EBUSY))
	if err := memfd.Unmap(b); err != nil {
		log.Fatal(err)
	}

	if err := memfd.AddSeals(f, memfd.SealShrink|memfd.SealGrow|memfd.SealWrite|memfd.SealSeal); err != nil {
		log.Fatal(err)
	}
	seals, err := memfd.GetSeals(f)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("seals:", seals)

	_, err = f.WriteAt([]byte("mode=slow"), 0)
	fmt.Println("write:", errors.Is(err, unix.EPERM))
	fmt.Println(memfd.Resize(f, 8192))

	ro, err := memfd.Map(f) // read-only now
	if err != nil {
		log.Fatal(err)
	}
	defer memfd.Unmap(ro)
	fmt.Printf("%s\n", ro[:len("mode=fast")])
	// Output:
	// write seal while mapped writable: true
	// seals: seal|shrink|grow|write
	// write: true
	// memfd: resize memfd:config to 8192 bytes: truncate memfd:config: operation not permitted (the memfd is sealed, or preserved in a LUO session, which freezes its size)
	// mode=fast
}

// Resize changes the size of a memfd that is neither sealed nor preserved:
// grow it before handing it to a LUO session, not after.
func ExampleResize() {
	f, err := memfd.New("log", 4096)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()

	if err := memfd.Resize(f, 1<<20); err != nil {
		log.Fatal(err)
	}
	size, err := memfd.Size(f)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(size)
	// Output: 1048576
}

func ExampleSeals_String() {
	fmt.Println(memfd.SealShrink | memfd.SealGrow)
	fmt.Println(memfd.Seals(0))
	// Output:
	// shrink|grow
	// none
}
