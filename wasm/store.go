package wasm

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/flashlottery/lottery/lottery"
	"github.com/flashlottery/lottery/sdk/abi"
)

// store keeps module bytes by sha256 and the index of modules, their kept
// versions and the active one. With a directory, bytes live in
// dir/modules/<sha256>.wasm and the index in dir/index.json, each written
// to a temporary file, synced and renamed into place, so a crash leaves
// either the old or the new file. Without one (dir ""), everything stays in
// memory and dies with the host.
type store struct {
	dir string

	mu    sync.Mutex
	blobs map[string][]byte // only without a directory
}

// storedIndex is the JSON index.
type storedIndex struct {
	Version int            `json:"version"`
	Modules []storedModule `json:"modules"`
}

type storedModule struct {
	Name     string          `json:"name"`
	Kind     string          `json:"kind"`
	Active   string          `json:"active,omitempty"`
	Versions []storedVersion `json:"versions"`
}

type storedVersion struct {
	SHA256   string    `json:"sha256"`
	Size     int       `json:"size"`
	Uploaded time.Time `json:"uploaded"`
}

const indexVersion = 1

func newStore(dir string) (*store, error) {
	s := &store{dir: dir}
	if dir == "" {
		s.blobs = make(map[string][]byte)
		return s, nil
	}
	if err := os.MkdirAll(filepath.Join(dir, "modules"), 0o755); err != nil {
		return nil, fmt.Errorf("wasm: creating the module directory: %w", err)
	}
	return s, nil
}

func (s *store) blobPath(sum string) string {
	return filepath.Join(s.dir, "modules", sum+".wasm")
}

// put stores bin under its sha256 sum.
func (s *store) put(sum string, bin []byte) error {
	if s.dir == "" {
		s.mu.Lock()
		s.blobs[sum] = bin
		s.mu.Unlock()
		return nil
	}
	if _, err := os.Stat(s.blobPath(sum)); err == nil {
		return nil
	}
	return writeFile(s.blobPath(sum), bin)
}

// get returns the bytes stored under sum, checking that they still hash to it.
func (s *store) get(sum string) ([]byte, error) {
	var bin []byte
	if s.dir == "" {
		s.mu.Lock()
		bin = s.blobs[sum]
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

// remove deletes the bytes stored under sum.
func (s *store) remove(sum string) error {
	if s.dir == "" {
		s.mu.Lock()
		delete(s.blobs, sum)
		s.mu.Unlock()
		return nil
	}
	err := os.Remove(s.blobPath(sum))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// loadIndex reads the index; a missing index is an empty one.
func (s *store) loadIndex() (storedIndex, error) {
	var idx storedIndex
	if s.dir == "" {
		return idx, nil
	}
	b, err := os.ReadFile(filepath.Join(s.dir, "index.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return idx, nil
	}
	if err != nil {
		return idx, fmt.Errorf("wasm: reading the module index: %w", err)
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return idx, fmt.Errorf("wasm: the module index %s is corrupt: %w", filepath.Join(s.dir, "index.json"), err)
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

// saveIndex replaces the index.
func (s *store) saveIndex(idx storedIndex) error {
	if s.dir == "" {
		return nil
	}
	idx.Version = indexVersion
	b, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return err
	}
	return writeFile(filepath.Join(s.dir, "index.json"), append(b, '\n'))
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
