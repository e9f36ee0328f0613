// Package memfd creates, sizes, seals and maps memfds: anonymous, RAM-backed
// files, the one kind of file Linux Live Update carries across a kexec.
//
// Rules to know when a memfd is meant for live update (package luo):
//   - Once preserved in a LUO session its size is frozen until the session is
//     closed: ftruncate, writes past the end and fallocate fail with EPERM.
//     Size it (New does) before preserving it.
//   - Hugetlb memfds cannot be preserved; New never makes one.
//   - The whole file is pinned in RAM when preserved (holes are allocated),
//     so a sparse 1 GiB memfd costs 1 GiB at preservation time.
//   - The next kernel restores contents, size, file offset and seals, not
//     the name. Linux 7.2 and 7.3 restore F_SEAL_EXEC on an executable
//     memfd, which implies every write seal: a memfd created with
//     MFD_NOEXEC_SEAL comes back read-only. New avoids that (see New).
//
// Imported by services (through package keep), luod and tests. No privileges
// needed. Linux only; on other systems every function returns an error
// wrapping errors.ErrUnsupported.
package memfd
