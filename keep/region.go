package keep

import (
	"fmt"
	"os"
	"slices"
	"strconv"

	"github.com/liveupdate/luo/memfd"
)

// Region is one named memfd region.
type Region struct {
	Name   string
	Size   int64
	Origin Origin
	// File is the memfd. It stays owned by the Store.
	File *os.File
	mem  []byte
}

// Region returns the region called name, restored if it was kept, else
// created with size bytes of zeros and handed to the manager (and to the
// session in session mode). name must pass [sdnotify.ValidFDName]
// (printable ASCII, no ':', at most [sdnotify.MaxFDNameLen] bytes) and be
// neither empty, IndexName, Config.Session nor the name of a file kept
// with Keep.
//
// A kept region of another size fails with ErrSizeChanged; a new region
// that the manager's store cannot hold fails with ErrStoreFull.
func (s *Store) Region(name string, size int64) (*Region, error) {
	if err := s.checkName(name); err != nil {
		return nil, fmt.Errorf("%w: region %q: %w", ErrBadName, name, err)
	}
	if size <= 0 {
		return nil, fmt.Errorf("%w: region %q: size %d must be positive", ErrBadName, name, size)
	}
	if r := s.regions[name]; r != nil {
		if r.Size != size {
			return nil, fmt.Errorf("%w: region %q was kept with %d bytes, not %d (Remove it first)", ErrSizeChanged, name, r.Size, size)
		}
		if st, err := r.File.Stat(); err != nil || st.Size() != size {
			return nil, fmt.Errorf("%w: region %q: the kept memfd does not have %d bytes", ErrSizeChanged, name, size)
		}
		return r, nil
	}
	if fs := s.other[name]; len(fs) > 0 {
		return s.adopt(name, size, fs)
	}
	if err := s.fits(1, fmt.Sprintf("region %q", name)); err != nil {
		return nil, err
	}
	f, err := memfd.New(name, size)
	if err != nil {
		return nil, fmt.Errorf("keep: %w", err)
	}
	r := &Region{Name: name, Size: size, Origin: Fresh, File: f}
	if err := s.add(r); err != nil {
		f.Close()
		return nil, err
	}
	if err := s.storeRegion(r); err != nil {
		return nil, err
	}
	return r, nil
}

// adopt takes a memfd of the fd store called name as the region when the
// index does not know it (it was lost: dropped by a full store, or written
// by a keep that crashed before recording it).
func (s *Store) adopt(name string, size int64, fs []*os.File) (*Region, error) {
	st, err := fs[0].Stat()
	_, notMemfd := memfd.GetSeals(fs[0])
	if len(fs) != 1 || err != nil || notMemfd != nil || st.Size() != size {
		return nil, fmt.Errorf("%w: the fd store holds %d fds called %q that keep's index does not know, not one memfd of %d bytes (Forget them first)", ErrSizeChanged, len(fs), name, size)
	}
	r := &Region{Name: name, Size: size, Origin: FDStore, File: fs[0]}
	if err := s.add(r); err != nil {
		return nil, err
	}
	delete(s.other, name)
	s.log.Warn("keep: the index did not know this region; adopted the memfd of the fd store with its name and size", "region", name, "size", size)
	return r, nil
}

// add records a region in the index (and the session).
func (s *Store) add(r *Region) error {
	token := s.idx.nextToken()
	if s.session != nil {
		if err := s.session.PreserveFD(r.File, token); err != nil {
			return fmt.Errorf("%w: preserve region %q: %w", ErrSession, r.Name, err)
		}
	}
	s.idx.Regions = slices.DeleteFunc(s.idx.Regions, func(ir indexRegion) bool { return ir.Name == r.Name })
	s.idx.Regions = append(s.idx.Regions, indexRegion{Name: r.Name, Size: r.Size, Token: token})
	s.regions[r.Name] = r
	return s.writeIndex(false)
}

// Remove forgets a region: it leaves the fd store and the index. (A LUO
// session cannot drop a single file; in session mode the region's pages
// stay preserved until the session ends, and the next kernel discards them.)
func (s *Store) Remove(name string) error {
	r := s.regions[name]
	if r == nil {
		return fmt.Errorf("%w: no region %q", ErrNotFound, name)
	}
	delete(s.regions, name)
	r.unmap()
	r.File.Close()
	for i := range s.idx.Regions {
		if s.idx.Regions[i].Name == name {
			s.idx.Regions[i].Removed = s.session != nil
		}
	}
	if s.session == nil {
		s.idx.Regions = s.idx.live()
	}
	if err := storeErr("remove region "+strconv.Quote(name), s.notifier.RemoveFiles(name)); err != nil {
		return err
	}
	return s.writeIndex(false)
}

func (s *Store) sortedRegions() []*Region {
	var rs []*Region
	for _, n := range s.Regions() {
		rs = append(rs, s.regions[n])
	}
	return rs
}

// Bytes maps the region shared and read-write (once) and returns it.
func (r *Region) Bytes() ([]byte, error) {
	if r.mem == nil {
		b, err := memfd.Map(r.File)
		if err != nil {
			return nil, fmt.Errorf("keep: region %q: %w", r.Name, err)
		}
		r.mem = b
	}
	return r.mem, nil
}

func (r *Region) unmap() {
	if r.mem != nil {
		memfd.Unmap(r.mem)
		r.mem = nil
	}
}
