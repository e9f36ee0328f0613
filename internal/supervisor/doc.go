// Package supervisor is the core of luod: it loads units, starts and stops
// their processes, receives their notifications, keeps their fd stores with
// systemd's semantics, serves the control API, re-executes itself without
// losing anything, and is the service manager's side of a live update
// (package update carries the stores across it).
//
// # Design
//
// One goroutine, the loop, owns every piece of state. Everything else talks
// to it through events: the notify receiver, the SIGCHLD reaper, the fd
// store poller, timers, and control-API handlers, which run code in the loop
// with do and wait for conditions with waitFor. A unit's state is a State
// (systemd's SubState, which implies its ActiveState) that changes only
// through setState, along the transitions listed in state.go.
//
// Processes are started through an exec shim (luod itself with
// "--exec-shim" as its first argument): Go cannot put a child's own pid in
// its environment before exec, so the shim sets LISTEN_PID and
// LISTEN_PIDFDID, marks every other fd close-on-exec and then execs the
// service. Each unit has a cgroup v2 group of its own (package cgroup),
// which its processes are born in: that is how a notification from any of
// them is attributed (NotifyAccess=all), how MAINPID= is checked, and how
// a stop kills them all. Without cgroup2, a unit's processes are those of
// its session (each service gets one, setsid), which a process can leave.
//
// A notification is attributed by its sender's credentials
// (SCM_CREDENTIALS, and the pidfd the kernel derives from them): a service
// with CAP_SYS_ADMIN can claim another process's pid and be taken for that
// process's unit, as with systemd; no datagram carries an identity the
// sender cannot choose.
//
// A unit's stdout and stderr (StandardOutput=journal) are pipes, each read
// by a goroutine of its own, never the loop: each line goes to the unit's
// recent lines, to followers (GetLogs with follow) through a queue that
// drops rather than blocks, and to the Logger within the unit's log rate
// limit (see LogKeyStream). The read ends are carried across a re-exec.
//
// luod reaps every child itself (wait4(-1)) and is a child subreaper when
// it is not PID 1, so orphans of a service come back to it.
//
// # Files
//
//	supervisor.go  Config, Manager, New, Run       loop.go      events, do, waitFor
//	state.go       the unit state machine          unit.go      a unit: start, stop
//	lifecycle.go   exits, restarts, timers         store.go     fd stores, LUO sessions handed out
//	notify.go      notifications                   spawn_linux.go, shim_linux.go  starting processes
//	procs_linux.go killing, sessions, reaping      signals_linux.go  signals, shutdown, PID 1
//	load.go        unit files, daemon-reload       update.go    updates, from request to FINISH
//	reexec_linux.go luod's own re-exec             control.go, control_update.go  the control API: the only
//	                                                             place that builds wire types
//	output.go, output_linux.go  units' stdout and stderr: pipes, lines, recent lines, followers
//
// Imported by cmd/luod only. Needs root for most of what it does.
package supervisor
