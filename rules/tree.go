package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// Tree is a rule tree: the seed's rule_tree row with its rule_tree_node and
// rule_tree_node_line rows. The walk starts at Root, follows the first line
// of each branch whose condition holds (else the branch's Default) and ends
// at a leaf, whose Value is the answer.
type Tree struct {
	// ID names the tree in the HTTP API and the module registry: 1 to 256
	// bytes of letters, digits, '.', '_' and '-'.
	ID string `json:"id" yaml:"id"`
	// Name is free text for people.
	Name string `json:"name,omitempty" yaml:"name,omitempty"`
	// Root is the ID of the node the walk starts at.
	Root  string `json:"root" yaml:"root"`
	Nodes []Node `json:"nodes" yaml:"nodes"`
	// Lines are tried in the order given here among the lines leaving the
	// same node; lines of different nodes may interleave freely.
	Lines []Line `json:"lines,omitempty" yaml:"lines,omitempty"`
}

// Node is a branch, which tests one attribute, or a leaf, which answers.
type Node struct {
	// ID is unique within the tree (1 to 256 bytes, any characters).
	ID   string   `json:"id" yaml:"id"`
	Type NodeType `json:"type" yaml:"type"`
	// RuleKey is the attribute a branch tests: userAge, userGender,
	// userTags, userLevel, userCity or daysSinceRegistration (abi.ParseKey).
	// Leaves have none.
	RuleKey string `json:"ruleKey,omitempty" yaml:"ruleKey,omitempty"`
	// Default is the node a branch goes to when none of its lines matches,
	// including when the attribute is missing. Every branch has one; leaves
	// have none.
	Default string `json:"default,omitempty" yaml:"default,omitempty"`
	// Value is a leaf's answer: an activity id (>= 1), or 0 for "no
	// match". Branches have none.
	Value int64 `json:"value,omitempty" yaml:"value,omitempty"`
}

// Line is an edge from a branch to another node, taken when the branch's
// attribute satisfies LimitType and LimitValue.
type Line struct {
	From      string    `json:"from" yaml:"from"`
	To        string    `json:"to" yaml:"to"`
	LimitType LimitType `json:"limitType" yaml:"limitType"`
	// LimitValue is the operand: one value for =, >, <, >= and <=, the list
	// of accepted values for enum. Integers are written in decimal.
	LimitValue Values `json:"limitValue" yaml:"limitValue"`
}

// NodeType is a node's kind, the seed's node_type column.
type NodeType uint8

// Node types.
const (
	// Branch nodes test their RuleKey along their lines.
	Branch NodeType = 1
	// Leaf nodes end the walk with their Value.
	Leaf NodeType = 2
)

// String returns "branch", "leaf" or "type(N)".
func (t NodeType) String() string {
	switch t {
	case Branch:
		return "branch"
	case Leaf:
		return "leaf"
	}
	return "type(" + strconv.Itoa(int(t)) + ")"
}

// parseNodeType accepts the number or the name.
func parseNodeType(s string) (NodeType, error) {
	switch s {
	case "branch":
		return Branch, nil
	case "leaf":
		return Leaf, nil
	}
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil {
		return 0, fmt.Errorf("node type %q: want 1 or branch, 2 or leaf", s)
	}
	return NodeType(n), nil
}

// UnmarshalJSON accepts the number (1, 2) or the name ("branch", "leaf").
// Numbers other than 1 and 2 decode, and Validate reports them.
func (t *NodeType) UnmarshalJSON(b []byte) error { return unmarshalJSONScalar(b, t, parseNodeType) }

// UnmarshalYAML accepts the number (1, 2) or the name (branch, leaf).
func (t *NodeType) UnmarshalYAML(n *yaml.Node) error {
	return unmarshalYAMLScalar(n, "a node type", t, parseNodeType)
}

// LimitType is a line's comparison, the seed's rule_limit_type column.
type LimitType uint8

// Limit types. The comparisons (>, <, >=, <=) apply to integer attributes;
// = and enum apply to every attribute. On userTags, which holds one value
// per tag, = means "has this tag" and enum "has any of these tags".
const (
	LimitEqual        LimitType = 1 // =
	LimitGreater      LimitType = 2 // >
	LimitLess         LimitType = 3 // <
	LimitGreaterEqual LimitType = 4 // >=
	LimitLessEqual    LimitType = 5 // <=
	LimitEnum         LimitType = 6 // enum: equal to one of the listed values
)

var limitNames = [...]string{"", "=", ">", "<", ">=", "<=", "enum"}

// String returns the operator ("=", ">", "<", ">=", "<=", "enum") or
// "limit(N)".
func (l LimitType) String() string {
	if l >= LimitEqual && l <= LimitEnum {
		return limitNames[l]
	}
	return "limit(" + strconv.Itoa(int(l)) + ")"
}

// ParseLimitType accepts the seed's number ("1" to "6") or the operator
// ("=", ">", "<", ">=", "<=", "enum"). Other numbers up to 255 parse, so
// that Validate can report them with the rest of a tree's problems.
func ParseLimitType(s string) (LimitType, error) {
	for i := LimitEqual; i <= LimitEnum; i++ {
		if limitNames[i] == s {
			return i, nil
		}
	}
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil {
		return 0, fmt.Errorf("limit type %q: want 1 to 6 or one of =, >, <, >=, <=, enum", s)
	}
	return LimitType(n), nil
}

// comparison reports whether l orders integers (>, <, >=, <=).
func (l LimitType) comparison() bool { return l >= LimitGreater && l <= LimitLessEqual }

// UnmarshalJSON accepts the number or the operator as a string.
func (l *LimitType) UnmarshalJSON(b []byte) error { return unmarshalJSONScalar(b, l, ParseLimitType) }

// UnmarshalYAML accepts the number or the operator (quote ">" and ">=",
// which YAML would otherwise read as a folded block).
func (l *LimitType) UnmarshalYAML(n *yaml.Node) error {
	return unmarshalYAMLScalar(n, "a limit type", l, ParseLimitType)
}

// unmarshalJSONScalar parses a JSON number or string into *dst; null
// leaves *dst as it is.
func unmarshalJSONScalar[T any](b []byte, dst *T, parse func(string) (T, error)) error {
	s, err := jsonScalar(b)
	if err != nil || s == "" {
		return err
	}
	*dst, err = parse(s)
	return err
}

// unmarshalYAMLScalar parses a YAML scalar into *dst; what names the
// value in the error for any other node.
func unmarshalYAMLScalar[T any](n *yaml.Node, what string, dst *T, parse func(string) (T, error)) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: %s is a scalar", n.Line, what)
	}
	v, err := parse(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*dst = v
	return nil
}

// jsonScalar returns the text of a JSON number or string, "" for null.
func jsonScalar(b []byte) (string, error) {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		return "", nil
	case len(b) > 0 && b[0] == '"':
		var s string
		err := json.Unmarshal(b, &s)
		return s, err
	case len(b) > 0 && (b[0] == '-' || b[0] >= '0' && b[0] <= '9'):
		return string(b), nil
	}
	return "", fmt.Errorf("want a number or a string, got %.20s", b)
}

// Values is a line's LimitValue: one value, or the list of an enum. In
// JSON and YAML one value may be written bare ("25", 25 or "man") and a
// list as an array; numbers are kept as their decimal text. A single value
// is written bare, so a one-element enum reads back the same.
type Values []string

// MarshalJSON writes one value as a string and more as an array.
func (v Values) MarshalJSON() ([]byte, error) {
	if len(v) == 1 {
		return json.Marshal(v[0])
	}
	return json.Marshal([]string(v))
}

// UnmarshalJSON accepts a string, an integer, or an array of them.
func (v *Values) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		var raw []json.RawMessage
		if err := json.Unmarshal(b, &raw); err != nil {
			return err
		}
		out := make(Values, 0, len(raw))
		for _, r := range raw {
			s, err := jsonValue(r)
			if err != nil {
				return err
			}
			out = append(out, s)
		}
		*v = out
		return nil
	}
	if bytes.Equal(b, []byte("null")) {
		*v = nil
		return nil
	}
	s, err := jsonValue(b)
	if err != nil {
		return err
	}
	*v = Values{s}
	return nil
}

func jsonValue(b []byte) (string, error) {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		err := json.Unmarshal(b, &s)
		return s, err
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return "", fmt.Errorf("a limit value is a string or a number, got %.20s", b)
	}
	return n.String(), nil
}

// MarshalYAML writes one value as a scalar and more as a sequence.
func (v Values) MarshalYAML() (any, error) {
	if len(v) == 1 {
		return v[0], nil
	}
	return []string(v), nil
}

// UnmarshalYAML accepts a scalar or a sequence of scalars.
func (v *Values) UnmarshalYAML(n *yaml.Node) error {
	scalar := func(n *yaml.Node) (string, error) {
		if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
			return "", fmt.Errorf("line %d: a limit value is a string or a number", n.Line)
		}
		return n.Value, nil
	}
	switch {
	case n.Kind == yaml.SequenceNode:
		out := make(Values, 0, len(n.Content))
		for _, c := range n.Content {
			s, err := scalar(c)
			if err != nil {
				return err
			}
			out = append(out, s)
		}
		*v = out
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null":
		*v = nil
	default:
		s, err := scalar(n)
		if err != nil {
			return err
		}
		*v = Values{s}
	}
	return nil
}
