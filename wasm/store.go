package wasm

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/flashlottery/lottery/lottery"
	"github.com/flashlottery/lottery/sdk/abi"
)

// ModuleStore is where a Host persists modules: their bytes by sha256 and
// one record per module (its kind, its kept versions, the active one), with
// a generation that grows with every change. The Host is its only caller;
// FileStore is the default (a data directory, or memory), and a store in a
// database shared by several hosts (see orders.Modules) makes a cluster of
// edges serve the same versions: each host polls Generation and, when it
// moved, reads Index and loads what changed (Host.Sync).
type ModuleStore interface {
	// Generation returns the store's change counter: it grows with every
	// Update, so a host that has applied generation g has nothing to do
	// while the store still answers g. It must be cheap: hosts call it
	// several times a second.
	Generation(ctx context.Context) (int64, error)
	// Index returns every module's record and the generation they are the
	// state of, read together.
	Index(ctx context.Context) ([]StoredModule, int64, error)
	// Blob returns the bytes stored under the hex sha256 sum, checked to
	// still hash to it; an error wrapping lottery.ErrNotFound when none are.
	Blob(ctx context.Context, sum string) ([]byte, error)
	// Update changes the record of the module name in one atomic step and
	// returns the new record and the generation it created. fn gets the
	// current record (nil for a new module) and returns the next one, or an
	// error that Update returns and that changes nothing. blob, when not
	// nil, is stored under its sha256 in the same step. Bytes no version of
	// any module references any more may be deleted. Concurrent updates, from
	// this process or another, are serialised: fn always sees the latest
	// record.
	Update(ctx context.Context, name string, blob []byte, fn func(cur *StoredModule) (StoredModule, error)) (StoredModule, int64, error)
}

// StoredModule is a module's record in a ModuleStore.
type StoredModule struct {
	Name string `json:"name"`
	// Kind is "draw" or "rule" (abi.Kind's String).
	Kind string `json:"kind"`
	// Active is the hex sha256 of the version every host should serve
	// ("" for none).
	Active string `json:"active,omitempty"`
	// Versions are the kept versions, newest upload first.
	Versions []StoredVersion `json:"versions"`
}

// StoredVersion is one kept version of a StoredModule.
type StoredVersion struct {
	SHA256   string    `json:"sha256"`
	Size     int       `json:"size"`
	Uploaded time.Time `json:"uploaded"`
}

// storedIndex is FileStore's JSON index.
type storedIndex struct {
	Version    int            `json:"version"`
	Generation int64          `json:"generation,omitempty"`
	Modules    []StoredModule `json:"modules"`
}

const indexVersion = 1

// FileStore is the default ModuleStore, for a single edge. With a
// directory, bytes live in dir/modules/<sha256>.wasm and the index in
// dir/index.json, each written to a temporary file, synced and renamed into
// place, so a crash leaves either the old or the new file. Without one (dir
// ""), everything stays in memory and dies with the process. Its generation
// lives in the index and in memory: two processes must not share a
// directory.
type FileStore struct {
	dir string

	mu    sync.Mutex
	gen   int64             // the index's generation
	blobs map[string][]byte // only without a directory
	mem   storedIndex       // only without a directory
}

var _ ModuleStore = (*FileStore)(nil)

// NewFileStore opens (creating it) the module directory dir, or a store in
// memory when dir is "". A corrupt index is an error.
func NewFileStore(dir string) (*FileStore, error) {
	s := &FileStore{dir: dir}
	if dir == "" {
		s.blobs = make(map[string][]byte)
		return s, nil
	}
	if err := os.MkdirAll(filepath.Join(dir, "modules"), 0o755); err != nil {
		return nil, fmt.Errorf("wasm: creating the module directory: %w", err)
	}
	idx, err := s.read()
	if err != nil {
		return nil, err
	}
	s.gen = idx.Generation
	return s, nil
}

func (s *FileStore) blobPath(sum string) string {
	return filepath.Join(s.dir, "modules", sum+".wasm")
}

// Generation returns the index's generation.
func (s *FileStore) Generation(context.Context) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen, nil
}

// Index returns the index; a missing one is empty.
func (s *FileStore) Index(context.Context) ([]StoredModule, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	idx, err := s.read()
	mods := make([]StoredModule, len(idx.Modules))
	for i, m := range idx.Modules {
		mods[i] = cloneModule(m)
	}
	return mods, idx.Generation, err
}

// Blob returns the bytes stored under sum.
func (s *FileStore) Blob(_ context.Context, sum string) ([]byte, error) {
	if s.dir == "" {
		s.mu.Lock()
		bin := s.blobs[sum]
		s.mu.Unlock()
		if bin == nil {
			return nil, fmt.Errorf("wasm: module %s: %w", sum, lottery.ErrNotFound)
		}
		return bin, nil
	}
	bin, err := os.ReadFile(s.blobPath(sum))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("wasm: module %s is not in %s: %w", sum, s.dir, lottery.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("wasm: reading module %s: %w", sum, err)
	}
	if got := sha256Hex(bin); got != sum {
		return nil, fmt.Errorf("wasm: module file %s is corrupt (its sha256 is %s)", s.blobPath(sum), got)
	}
	return bin, nil
}

// Update writes blob (if any), then the index with the module's new record
// and the next generation, then deletes the files of versions no module
// keeps any more.
func (s *FileStore) Update(_ context.Context, name string, blob []byte, fn func(*StoredModule) (StoredModule, error)) (StoredModule, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	idx, err := s.read()
	if err != nil {
		return StoredModule{}, 0, err
	}
	i := slices.IndexFunc(idx.Modules, func(m StoredModule) bool { return m.Name == name })
	var cur *StoredModule
	if i >= 0 {
		c := cloneModule(idx.Modules[i])
		cur = &c
	}
	next, err := fn(cur)
	if err != nil {
		return StoredModule{}, 0, err
	}
	next.Name = name
	if blob != nil {
		if err := s.put(sha256Hex(blob), blob); err != nil {
			return StoredModule{}, 0, err
		}
	}
	mods := slices.Clone(idx.Modules)
	if i >= 0 {
		mods[i] = next
	} else {
		mods = append(mods, next)
		slices.SortFunc(mods, func(a, b StoredModule) int { return cmp.Compare(a.Name, b.Name) })
	}
	next2 := storedIndex{Generation: idx.Generation + 1, Modules: mods}
	if err := s.write(next2); err != nil {
		return StoredModule{}, 0, err
	}
	s.gen = next2.Generation
	if cur != nil {
		s.collect(cur.Versions, mods)
	}
	return cloneModule(next), next2.Generation, nil
}

// collect deletes the bytes of the versions in dropped that no module keeps.
// A failure only leaves a file behind.
func (s *FileStore) collect(dropped []StoredVersion, mods []StoredModule) {
	used := map[string]bool{}
	for _, m := range mods {
		for _, v := range m.Versions {
			used[v.SHA256] = true
		}
	}
	for _, v := range dropped {
		if used[v.SHA256] {
			continue
		}
		if s.dir == "" {
			delete(s.blobs, v.SHA256)
			continue
		}
		_ = os.Remove(s.blobPath(v.SHA256))
	}
}

// put stores bin under its sha256 sum; the caller holds s.mu.
func (s *FileStore) put(sum string, bin []byte) error {
	if s.dir == "" {
		s.blobs[sum] = bin
		return nil
	}
	if _, err := os.Stat(s.blobPath(sum)); err == nil {
		return nil
	}
	return writeFile(s.blobPath(sum), bin)
}

// read reads the index (a missing one is empty); the caller holds s.mu.
func (s *FileStore) read() (storedIndex, error) {
	if s.dir == "" {
		return s.mem, nil
	}
	var idx storedIndex
	path := filepath.Join(s.dir, "index.json")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return idx, nil
	}
	if err != nil {
		return idx, fmt.Errorf("wasm: reading the module index: %w", err)
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return idx, fmt.Errorf("wasm: the module index %s is corrupt: %w", path, err)
	}
	if idx.Version != indexVersion {
		return idx, fmt.Errorf("wasm: the module index has version %d, want %d", idx.Version, indexVersion)
	}
	for _, m := range idx.Modules {
		if _, err := abi.ParseKind(m.Kind); err != nil {
			return idx, fmt.Errorf("wasm: the module index: module %q: %w", m.Name, err)
		}
	}
	return idx, nil
}

// write replaces the index; the caller holds s.mu.
func (s *FileStore) write(idx storedIndex) error {
	idx.Version = indexVersion
	if s.dir == "" {
		s.mem = idx
		return nil
	}
	b, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return err
	}
	return writeFile(filepath.Join(s.dir, "index.json"), append(b, '\n'))
}

func cloneModule(m StoredModule) StoredModule {
	m.Versions = slices.Clone(m.Versions)
	return m
}

// writeFile writes b to path through a synced temporary file and a rename.
func writeFile(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("wasm: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("wasm: writing %s: %w", path, err)
	}
	return nil
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
