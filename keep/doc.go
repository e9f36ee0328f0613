// Package keep gives a service named memory regions that survive its own
// restarts and kernel live updates, in about ten lines:
//
//	st, err := keep.Open(nil)
//	if err != nil { ... }
//	r, err := st.Region("cache", 64<<20)
//	if err != nil { ... }
//	b, err := r.Bytes() // the region, mapped shared
//	if r.Origin == keep.Fresh {
//		initialize(b)
//	}
//	... serve from b; write to it as state changes ...
//	st.Notifier().Ready()
//
// Each region is a memfd. keep hands it to the service manager's fd store
// (sd_notify FDSTORE=1) as soon as it exists, so a restarted service gets it
// back through LISTEN_FDS; Region then returns it with Origin FDStore. How
// a region crosses a kexec live update depends on the configuration:
//
//   - Fd-store mode (Config.Session empty, the default): the manager carries
//     the memfds itself. luod does this for units with
//     FileDescriptorStorePreserve=yes or on-success, and so does systemd 262
//     with the same settings. This works for every consecutive update.
//   - Session mode (Config.Session set): the regions are also preserved in a
//     LUO session of the service: one the manager creates and hands out
//     (LUOSession= in the unit, stored under that name), or one keep creates
//     when the service can open /dev/liveupdate (root). The session fd is
//     kept in the fd store; after the kexec keep retrieves every region from
//     the incoming session, finishes it, and preserves the regions again in
//     an outgoing session, so the state survives the next update too. luod
//     hands out a fresh outgoing session next to the incoming one after an
//     update. systemd 262 hands back only the incoming one, and an
//     unprivileged service cannot create one: keep then restores from it,
//     keeps the regions in the fd store for this run (carried by systemd
//     when the unit has FileDescriptorStorePreserve=yes) and drops the
//     finished session from the store, so that systemd hands out a new one
//     at the next start. Measured under systemd 262.1 (internal/interop):
//     all three ways (fd store, LUOSession=, own session as root) carry the
//     region across consecutive updates. In session mode systemd-shutdown
//     warns "Failed to preserve LUO fd ... Device or resource busy" for
//     the regions, which its own session cannot take a second time; they
//     travel in the service's session, nothing is lost.
//
// Region.Origin tells where a region came from: Fresh (created now),
// FDStore (the manager's fd store, same boot: a service restart) or LUO
// (carried across a kernel live update, by either mode).
//
// # Rules
//
//   - A region's size is fixed: a memfd preserved for a live update cannot
//     change size, and Region fails if a restored region's size differs from
//     the one asked for (Remove it to start over).
//   - Only memfds survive a kexec; keep only makes memfds. Other fds in the
//     store (sockets, pipes) survive restarts, not kernel updates.
//   - Write to the mapping at any time: what is in the pages at the moment
//     of the kexec is what the next kernel gets. There is no flush.
//   - The unit needs FileDescriptorStoreMax= large enough for the regions,
//     the index memfd ("keep.index") and the session, if any.
//   - Without a service manager (no $NOTIFY_SOCKET) regions are fresh on
//     every start; Open says so through Config.Logf.
//   - Without LUO (no /dev/liveupdate, or liveupdate=on missing) restarts
//     still keep the regions; kernel updates do not.
//
// keep uses only the standard library and golang.org/x/sys. It needs no
// privileges, except to create its own LUO session. Linux only.
package keep
