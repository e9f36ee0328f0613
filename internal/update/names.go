package update

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/liveupdate/luo"
	"github.com/liveupdate/luo/internal/fdstore"
)

// SessionName is luod's own session: the manifest at token 0, the stores'
// memfds at tokens 1, 2, ...
const SessionName = "luod"

// SessionPrefix starts the names of the other sessions luod creates: those
// for LUOSession= and the trial session of a plan.
const SessionPrefix = "luod/"

// trialSessionName is the session a plan's trial preservation uses and
// closes again.
const trialSessionName = SessionPrefix + "plan"

// Reserved reports whether a session name is in luod's namespace.
func Reserved(name string) bool {
	return name == SessionName || strings.HasPrefix(name, SessionPrefix)
}

// LUOSessionName is the kernel name of the session luod creates for
// LUOSession=name of unit: "luod/<unit without .service>/<name>" when that
// fits in luo.MaxNameLen bytes, else "luod/" + a readable prefix of the
// unit + "-" + a hash of unit and name; always the same for the same unit
// and name, and never the same for two pairs (up to the hash).
func LUOSessionName(unit, name string) string {
	base := strings.TrimSuffix(unit, ".service")
	if full := SessionPrefix + base + "/" + name; len(full) <= luo.MaxNameLen {
		return full
	}
	sum := sha256.Sum256([]byte(unit + "/" + name))
	h := hex.EncodeToString(sum[:12]) // 24 hex digits
	room := luo.MaxNameLen - len(SessionPrefix) - len("-") - len(h)
	if len(base) > room {
		base = base[:room]
	}
	return SessionPrefix + base + "-" + h
}

// sessionProblem says why a session fd stored by a unit cannot be carried
// across a kexec, or "".
// A session in luod's namespace is carried when luod handed it out for
// this unit and name, whoever stored it last (keep stores it back).
func sessionProblem(unit string, e *Entry) string {
	switch {
	case e.Incoming:
		return "incoming LUO session: the kernel does not carry it again; its files must be retrieved and preserved into a new outgoing session"
	case Reserved(e.Session) && e.Origin != fdstore.OriginHandedOut && e.Session != LUOSessionName(unit, e.Name):
		return fmt.Sprintf("session name %q is in luod's reserved namespace (%q, %q...)", e.Session, SessionName, SessionPrefix)
	}
	return ""
}
