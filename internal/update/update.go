// Package update holds the kernel-facing steps of a kexec live update that
// luod performs: the session namespace luod reserves, the checks of a plan,
// preserving fd-store memfds and the manifest into luod's LUO session, and
// restoring them in the next kernel. The supervisor orchestrates (stopping
// and starting units); this package talks to /dev/liveupdate and kexec.
//
// # Session namespace
//
// luod owns the LUO session named "luod" (the manifest at token 0, the
// stores' memfds at tokens 1, 2, ...) and every session whose name starts
// with "luod/" (those it creates for LUOSession=). A service's own session
// in that namespace is refused: it could collide with luod's.
//
// Imported by the supervisor. Needs root. Linux only.
package update

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// SessionName is luod's own session.
const SessionName = "luod"

// SessionPrefix starts the names of the sessions luod creates for
// LUOSession=.
const SessionPrefix = "luod/"

// Reserved reports whether a session name is in luod's namespace.
func Reserved(name string) bool {
	return name == SessionName || strings.HasPrefix(name, SessionPrefix)
}

// LUOSessionName is the kernel name of the session luod creates for
// LUOSession=name of unit: "luod/<unit without .service>/<name>" when that
// fits in 63 bytes, else "luod/" + a readable prefix + a hash of both,
// always the same for the same unit and name.
func LUOSessionName(unit, name string) string {
	base := strings.TrimSuffix(unit, ".service")
	full := SessionPrefix + base + "/" + name
	if len(full) <= 63 {
		return full
	}
	sum := sha256.Sum256([]byte(unit + "/" + name))
	h := hex.EncodeToString(sum[:12]) // 24 hex digits
	prefix := base
	if len(prefix) > 63-len(SessionPrefix)-1-len(h) {
		prefix = prefix[:63-len(SessionPrefix)-1-len(h)]
	}
	return SessionPrefix + prefix + "-" + h
}
