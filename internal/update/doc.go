// Package update carries luod's fd stores across an update: a kexec live
// update into the next kernel, and luod's own re-execution (a soft update,
// or a plain daemon-reexec). It owns the whole route of a stored fd from
// the snapshot of the stores to the stores of the next luod:
//
//	Snapshot (every unit's entries, with their facts)
//	  → Decide: one Fate and reason per Entry            plan.go, pure
//	  (→ Stage: plan and load ahead, units running        stage.go)
//	  → Run: load → stop → Preserve → Manifest → Exec    run.go, preserve.go
//	next kernel:
//	  → Open: the Manifest and the sessions              restore.go
//	  → Retrieve, unit by unit: its memfds; the supervisor puts them back
//	    into the unit's store and starts it before the next unit's
//	  → Completion.Finish once they are up               completion.go
//
// One Entry type travels that whole way, and one versioned Manifest codec
// (manifest.go) is written at the end of the old side and read back at the
// start of the new one, for the kexec and the re-exec alike.
//
// Everything that touches the kernel goes through the small [Kernel]
// interface: [System] is the running kernel (/dev/liveupdate, kexec), and
// package updatetest has a fake that keeps sessions in memory and "reboots"
// by handing them to the next fake kernel, so the whole sequence, and the
// abort at every step, runs in host tests. The service manager's side of an
// update (stopping and starting units, re-executing luod) is the [Host]
// interface, which luod's supervisor implements.
//
// # Session namespace
//
// luod owns the LUO session named "luod" (the manifest at token 0, the
// stores' memfds at tokens 1, 2, ...) and every session whose name starts
// with "luod/" (those it creates for LUOSession=, and the trial session of
// a plan). A service's own session in that namespace is not carried: it
// could collide with luod's.
//
// Imported by luod's supervisor. It imports neither the control API nor the
// supervisor: the supervisor converts to wire types at its edge. Most
// operations need root (CAP_SYS_BOOT for kexec, the 0600 /dev/liveupdate).
// Linux only.
package update
