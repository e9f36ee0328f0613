// Package supervisor is the core of luod: it loads units, starts and stops
// their processes, receives their notifications, keeps their fd stores with
// systemd's semantics, serves the control API, re-executes itself without
// losing anything, and carries the fd stores across kexec live updates.
//
// # Design
//
// One goroutine, the loop, owns every piece of state. Everything else talks
// to it through events: the notify receiver, the SIGCHLD reaper, the fd
// store poller, timers, and control-API handlers, which run code in the loop
// with do and wait for conditions with waitFor. Unit state machines are
// explicit (ActiveState/SubState as in systemd) and every change is logged.
//
// Processes are started through an exec shim (luod itself with
// "--exec-shim" as its first argument): Go cannot put a child's own pid in
// its environment before exec, so the shim sets LISTEN_PID and
// LISTEN_PIDFDID and then execs the service. Each service gets its own
// session (setsid); its processes are those of that session, which is how
// NotifyAccess=all attributes messages and how stop finds stragglers.
//
// luod reaps every child itself (wait4(-1)) and is a child subreaper when
// it is not PID 1, so orphans of a service come back to it.
//
// Imported by cmd/luod only. Needs root for most of what it does.
package supervisor
