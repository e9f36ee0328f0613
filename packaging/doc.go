// Package packaging holds what installs luo on a machine, and its tests:
// luod.service.in (the systemd unit make install writes, with luod's
// path), deb.sh (make deb: a Debian package built with dpkg-deb from make
// install), and the tests that check what both ship (the binaries, the
// unit, the manual pages with man, the shell completions with bash). It has
// no Go API.
package packaging
