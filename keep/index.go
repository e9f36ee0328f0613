package keep

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/liveupdate/luo"
	"github.com/liveupdate/luo/memfd"
	"github.com/liveupdate/luo/sdnotify"
)

// index is what keep records about its regions, in the "keep.index"
// memfd (and at token 0 of the session in session mode).
type index struct {
	Version     int           `json:"version"`
	BootID      string        `json:"boot_id"`
	LiveUpdates int           `json:"live_updates"`
	Regions     []indexRegion `json:"regions"`
	// SessionName and SessionBoot identify the outgoing session the
	// regions were last preserved in (session mode).
	SessionName string `json:"session_name,omitempty"`
	SessionBoot string `json:"session_boot,omitempty"`
}

type indexRegion struct {
	Name    string `json:"name"`
	Size    int64  `json:"size"`
	Token   uint64 `json:"token"`
	Removed bool   `json:"removed,omitempty"`
}

const indexSize = 64 << 10

// live returns the regions of the index that were not removed.
func (idx *index) live() []indexRegion {
	return slices.DeleteFunc(slices.Clone(idx.Regions), func(ir indexRegion) bool { return ir.Removed })
}

// has tells whether the index records a live region called name.
func (idx *index) has(name string) bool {
	return slices.ContainsFunc(idx.Regions, func(ir indexRegion) bool { return ir.Name == name && !ir.Removed })
}

// nextToken is the session token of a new region (0 is the index's).
func (idx *index) nextToken() uint64 {
	token := uint64(1)
	for _, ir := range idx.Regions {
		token = max(token, ir.Token+1)
	}
	return token
}

func readIndex(f *os.File) (index, error) {
	var idx index
	b := make([]byte, indexSize)
	n, _ := f.ReadAt(b, 0)
	b = b[:n]
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return idx, fmt.Errorf("%w: %w", ErrIndex, err)
	}
	if idx.Version != 1 {
		return idx, fmt.Errorf("%w: version %d, keep reads 1", ErrIndex, idx.Version)
	}
	return idx, nil
}

// writeIndex rewrites the index memfd in place (its size is fixed: it may
// be preserved). store hands it to the fd store (again).
func (s *Store) writeIndex(store bool) error {
	if s.index == nil {
		f, err := memfd.New(IndexName, indexSize)
		if err != nil {
			return fmt.Errorf("keep: %w", err)
		}
		s.index = f
		store = true
	}
	b, err := json.Marshal(s.idx)
	if err != nil {
		return err
	}
	if len(b) >= indexSize {
		return fmt.Errorf("keep: the index of %d regions does not fit in %d bytes", len(s.idx.Regions), indexSize)
	}
	b = append(b, make([]byte, indexSize-len(b))...)
	if _, err := s.index.WriteAt(b, 0); err != nil {
		return fmt.Errorf("keep: write the index: %w", err)
	}
	if store {
		if err := storeErr("replace the stored index", s.notifier.RemoveFiles(IndexName)); err != nil {
			return err
		}
		return storeErr("store the index", s.notifier.StoreFiles(IndexName, []*os.File{s.index}, &sdnotify.StoreOptions{NoPoll: true}))
	}
	return nil
}

// defaultSessionName is "keep/" + the unit's name.
func defaultSessionName() string {
	name := os.Getenv("LUOD_UNIT")
	if name == "" {
		if b, err := os.ReadFile("/proc/self/cgroup"); err == nil {
			for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				if i := strings.LastIndexByte(line, '/'); i >= 0 && strings.HasSuffix(line, ".service") {
					name = line[i+1:]
				}
			}
		}
	}
	if name == "" {
		name = filepath.Base(os.Args[0])
	}
	name = "keep/" + strings.TrimSuffix(name, ".service")
	if len(name) > luo.MaxNameLen {
		name = name[:luo.MaxNameLen]
	}
	return name
}

func sortedKeys[V any](m map[string]V) []string {
	var names []string
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
