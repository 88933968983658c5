package wasm_test

import (
	"testing"

	"github.com/flashlottery/lottery/wasm"
	"github.com/flashlottery/lottery/wasm/storetest"
)

func TestFileStoreContract(t *testing.T) {
	for name, dir := range map[string]func(*testing.T) string{
		"Dir":    func(t *testing.T) string { return t.TempDir() },
		"Memory": func(*testing.T) string { return "" },
	} {
		t.Run(name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) wasm.ModuleStore {
				s, err := wasm.NewFileStore(dir(t))
				if err != nil {
					t.Fatal(err)
				}
				return s
			})
		})
	}
}
