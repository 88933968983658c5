package wasmgen

// AppendCustomSection appends a custom section (id 0) with name and payload
// to a module binary. A custom section changes a module's bytes, so its
// sha256 and the version an upload makes, without changing what it does:
// how tests and benchmarks make new versions of the same code.
func AppendCustomSection(bin []byte, name string, payload []byte) []byte {
	return appendSection(bin, 0, append(appendName(nil, name), payload...))
}
