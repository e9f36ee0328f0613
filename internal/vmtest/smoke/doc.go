// Package smoke proves packages vm and vmtest end to end: its tests boot a
// three-stage VM (7.2 -> 7.3 -> 7.2, chained by kexec) and check, inside
// the guest and on the host, that every stage runs the planned kernel. It
// holds tests only; nothing imports it.
package smoke
