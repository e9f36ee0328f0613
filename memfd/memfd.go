package memfd

import (
	"strconv"
	"strings"
)

// Seals is a set of F_SEAL_* flags (fcntl(2) F_ADD_SEALS / F_GET_SEALS).
type Seals int

// The seals of Linux 7.2 (include/uapi/linux/fcntl.h); all of them survive
// a live update.
const (
	SealSeal        Seals = 0x01 // F_SEAL_SEAL: no more seals can be added
	SealShrink      Seals = 0x02 // F_SEAL_SHRINK: the size cannot shrink
	SealGrow        Seals = 0x04 // F_SEAL_GROW: the size cannot grow
	SealWrite       Seals = 0x08 // F_SEAL_WRITE: contents are read-only (no writable mappings may exist)
	SealFutureWrite Seals = 0x10 // F_SEAL_FUTURE_WRITE: no new writable mappings or writes
	SealExec        Seals = 0x20 // F_SEAL_EXEC: the exec bits cannot change
)

var sealNames = []struct {
	s    Seals
	name string
}{
	{SealSeal, "seal"}, {SealShrink, "shrink"}, {SealGrow, "grow"},
	{SealWrite, "write"}, {SealFutureWrite, "future-write"}, {SealExec, "exec"},
}

// String lists the seals, e.g. "shrink|grow", or "none".
func (s Seals) String() string {
	var parts []string
	for _, n := range sealNames {
		if s&n.s != 0 {
			parts = append(parts, n.name)
			s &^= n.s
		}
	}
	if s != 0 {
		parts = append(parts, "0x"+strconv.FormatUint(uint64(s), 16))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "|")
}
