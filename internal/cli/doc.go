// Package cli is luoctl, the command line client of luod: its commands,
// flags and output, importable so that tests (and wrappers) can drive it.
// cmd/luoctl only calls [Main].
//
// luoctl talks to luod over its control socket with package control (the
// io.luo.Manager Varlink interface). That socket is root-only, so luoctl
// needs root (or luod's own user). Output is made for people (tables,
// systemctl-like status blocks, ASCII only); --json prints luod's replies
// as indented JSON for scripts instead, typed by the interface description
// (docs/luoctl-json.md says which reply each command prints).
//
// # Exit status
//
// Scripts can rely on these:
//
//	0  success
//	1  failure: an error reply from luod, a timeout, a lost connection
//	2  usage error: unknown command or flag, bad arguments
//	3  a unit does not exist (NoSuchUnit)
//	4  the update plan is not OK, or the update was refused or failed
//	5  luod cannot be reached: no socket, or connection refused
//	6  permission denied: luod's control socket is root-only
//
// Errors go to stderr as "luoctl: <message>".
package cli
