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
// (carried across a kernel live update, by either mode). Store.Mode tells
// how the regions will cross the next update (ModeFDStore, ModeSession,
// ModeOwnSession, or ModeNone without a manager).
//
// # Other fds next to the regions
//
// A service that keeps more than regions (a listening socket, a pipe to a
// helper, a memfd it manages itself) hands them to keep, not to the
// notifier, so that keep counts them and names stay unique:
//
//	if st.File("listener") == nil {
//		l, _ := net.Listen("tcp", addr)
//		f, _ := l.(*net.TCPListener).File()
//		st.Keep("listener", f, nil) // stored with FDPOLL=0; replaces an older one
//	}
//	l, _ := net.FileListener(st.File("listener"))
//
// Store.Forget removes one kept file. Kept files are stored with FDPOLL=0
// unless KeepOptions.Poll is set, so a pipe whose peer closed is not
// dropped by the manager. Only memfds cross a kernel update.
//
// # The size of the store
//
// The unit needs FileDescriptorStoreMax= of at least: one per region, one
// for the index memfd (IndexName), one for the session in session mode,
// and one per kept file. luod and systemd tell the service the limit in
// $FDSTORE; keep reads it (or Config.StoreMax) and refuses, with
// ErrStoreFull, a region or file the manager would otherwise drop
// silently: Open fails before it finishes an incoming session or stores
// anything, Region and Keep before they create or send anything. After a
// live update luod holds the incoming session next to the new outgoing one
// under the same name; it counts them as one entry, and keep removes the
// finished incoming one from the store before it stores anything else.
//
// # Recovery
//
// keep works from what it finds. A region the index does not know (the
// index was lost) is adopted from the fd store when Region asks for a
// memfd of that name and size. A stored session keep cannot preserve into
// (an earlier instance filled it and its index is gone, so token 0 is
// taken) is dropped from the store: the regions stay in the fd store for
// this run, Mode says ModeFDStore, and the manager hands out a fresh
// session at the next start.
//
// # Rules
//
//   - A region's size is fixed: a memfd preserved for a live update cannot
//     change size, and Region fails with ErrSizeChanged if a restored
//     region's size differs from the one asked for (Remove it to start
//     over).
//   - Write to the mapping at any time: what is in the pages at the moment
//     of the kexec is what the next kernel gets. There is no flush.
//   - Without a service manager (no $NOTIFY_SOCKET) regions are fresh on
//     every start; Open logs it (Config.Logger).
//   - Without LUO (no /dev/liveupdate, or liveupdate=on missing) restarts
//     still keep the regions; kernel updates do not.
//   - Errors a caller handles wrap ErrStoreFull, ErrSizeChanged,
//     ErrBadName, ErrNotFound, ErrIndex or ErrSession (use errors.Is).
//
// keep uses only the standard library and golang.org/x/sys. It needs no
// privileges, except to create its own LUO session. Linux only.
package keep
