package wasmgen

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
)

func TestAppendCustomSection(t *testing.T) {
	var m Module
	f := m.Func("answer", FuncType{Results: []ValType{I32}})
	f.I32Const(42)
	m.ExportFunc("answer", f)
	bin, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	// A payload over 127 bytes makes the section size take two LEB128 bytes.
	long := AppendCustomSection(bytes.Clone(bin), "note", []byte(strings.Repeat("x", 300)))
	short := AppendCustomSection(bytes.Clone(bin), "note", []byte("v2"))
	if bytes.Equal(long, bin) || bytes.Equal(short, bin) || !bytes.HasPrefix(short, bin) {
		t.Fatal("the custom section did not change the bytes after the module")
	}
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	for _, b := range [][]byte{long, short} {
		cm, err := r.CompileModule(ctx, b)
		if err != nil {
			t.Fatalf("wazero rejected the module with a custom section: %v", err)
		}
		if _, ok := cm.ExportedFunctions()["answer"]; !ok {
			t.Fatal("the export is gone")
		}
	}
}
