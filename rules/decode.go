package rules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"go.yaml.in/yaml/v3"
)

// Size bounds. Decode rejects documents beyond them and Validate reports
// trees beyond them, so the cost of validating and compiling a tree, and
// the size of its module, are bounded whoever sends it.
const (
	// MaxDocumentSize is the largest JSON or YAML document Decode reads.
	MaxDocumentSize = 1 << 20
	// MaxNodes is the most nodes a tree may have.
	MaxNodes = 1024
	// MaxLines is the most lines a tree may have.
	MaxLines = 4096
	// MaxStringLen is the longest string a tree may hold, in bytes: ids,
	// names, rule keys and limit values.
	MaxStringLen = 256
	// MaxEnumValues is the most values one enum line may list.
	MaxEnumValues = 256
	// MaxValues is the most limit values all lines together may hold. With
	// MaxValueBytes it bounds the compiled module: an integer value costs
	// about 14 bytes of code, a string constant its bytes (padded to 8) and
	// 16 bytes of table, so a tree within the bounds compiles to well under
	// 1 MiB.
	MaxValues = 16384
	// MaxValueBytes is the most bytes all limit values together may hold.
	MaxValueBytes = 64 << 10
)

// maxYAMLDepth bounds the nesting of a YAML document; a tree needs 5.
const maxYAMLDepth = 16

// Decode decodes a tree from JSON when the first non-blank byte is '{',
// else from YAML. It checks the syntax, unknown fields and the size bounds,
// not the tree's meaning: call Validate, or Compile, which validates.
func Decode(data []byte) (*Tree, error) {
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		return DecodeJSON(data)
	}
	return DecodeYAML(data)
}

// DecodeJSON decodes a tree from one JSON object. Unknown fields, trailing
// data and documents beyond the size bounds are errors.
func DecodeJSON(data []byte) (*Tree, error) {
	if len(data) > MaxDocumentSize {
		return nil, fmt.Errorf("rules: decode JSON: %d bytes (at most %d)", len(data), MaxDocumentSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var t Tree
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("rules: decode JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("rules: decode JSON: data after the tree")
	}
	if err := checkBounds(&t); err != nil {
		return nil, fmt.Errorf("rules: decode JSON: %w", err)
	}
	return &t, nil
}

// DecodeYAML decodes a tree from one YAML document. Unknown fields, a
// second document, aliases (which could expand a small document into a
// huge one), floats (a tree holds only integers and strings, and YAML would
// truncate 1.5 into an integer field silently) and documents beyond the
// size bounds are errors.
func DecodeYAML(data []byte) (*Tree, error) {
	if len(data) > MaxDocumentSize {
		return nil, fmt.Errorf("rules: decode YAML: %d bytes (at most %d)", len(data), MaxDocumentSize)
	}
	// First pass: the document's shape, without expanding anything.
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			return nil, errors.New("rules: decode YAML: empty document")
		}
		return nil, fmt.Errorf("rules: decode YAML: %w", err)
	}
	var next yaml.Node
	if err := dec.Decode(&next); err != io.EOF {
		if err == nil {
			return nil, errors.New("rules: decode YAML: more than one document")
		}
		return nil, fmt.Errorf("rules: decode YAML: %w", err)
	}
	if err := checkYAML(&doc, 0); err != nil {
		return nil, fmt.Errorf("rules: decode YAML: %w", err)
	}
	// Second pass: into the Tree, rejecting unknown fields (yaml.Node's
	// Decode cannot).
	dec = yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var t Tree
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("rules: decode YAML: %w", err)
	}
	if err := checkBounds(&t); err != nil {
		return nil, fmt.Errorf("rules: decode YAML: %w", err)
	}
	return &t, nil
}

func checkYAML(n *yaml.Node, depth int) error {
	if depth > maxYAMLDepth {
		return fmt.Errorf("line %d: nested more than %d levels deep", n.Line, maxYAMLDepth)
	}
	switch n.Kind {
	case yaml.AliasNode:
		return fmt.Errorf("line %d: aliases are not supported", n.Line)
	case yaml.ScalarNode:
		if n.ShortTag() == "!!float" {
			return fmt.Errorf("line %d: %q is a float; a rule tree holds integers and strings (quote it for a string)", n.Line, n.Value)
		}
	}
	for _, c := range n.Content {
		if err := checkYAML(c, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// checkBounds reports the first size bound t exceeds.
func checkBounds(t *Tree) error {
	if len(t.Nodes) > MaxNodes {
		return fmt.Errorf("%d nodes (at most %d)", len(t.Nodes), MaxNodes)
	}
	if len(t.Lines) > MaxLines {
		return fmt.Errorf("%d lines (at most %d)", len(t.Lines), MaxLines)
	}
	long := func(s ...string) bool {
		for _, v := range s {
			if len(v) > MaxStringLen {
				return true
			}
		}
		return false
	}
	if long(t.ID, t.Name, t.Root) {
		return fmt.Errorf("the tree's id, name or root is longer than %d bytes", MaxStringLen)
	}
	for i, n := range t.Nodes {
		if long(n.ID, n.RuleKey, n.Default) {
			return fmt.Errorf("node %d: a string is longer than %d bytes", i, MaxStringLen)
		}
	}
	values, size := 0, 0
	for i, l := range t.Lines {
		values += len(l.LimitValue)
		for _, v := range l.LimitValue {
			size += len(v)
		}
		if len(l.LimitValue) > MaxEnumValues {
			return fmt.Errorf("line %d: %d limit values (at most %d)", i, len(l.LimitValue), MaxEnumValues)
		}
		if long(l.From, l.To) || long(l.LimitValue...) {
			return fmt.Errorf("line %d: a string is longer than %d bytes", i, MaxStringLen)
		}
	}
	if values > MaxValues || size > MaxValueBytes {
		return fmt.Errorf("the lines hold %d limit values of %d bytes in all (at most %d values, %d bytes)", values, size, MaxValues, MaxValueBytes)
	}
	return nil
}
