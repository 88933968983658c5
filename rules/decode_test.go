package rules

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestSeedFilesAgree: the YAML and JSON files of the seed tree decode to
// the same tree.
func TestSeedFilesAgree(t *testing.T) {
	y, j := loadSeed(t, "yaml"), loadSeed(t, "json")
	if !reflect.DeepEqual(y, j) {
		t.Fatalf("yaml %+v\njson %+v", y, j)
	}
	if err := y.Validate(); err != nil {
		t.Fatal(err)
	}
}

// roundTrip marshals t as JSON and as YAML and checks both decode to t.
func roundTrip(t *testing.T, tree *Tree) {
	t.Helper()
	if len(tree.Lines) == 0 {
		tree.Lines = nil // empty and absent read back alike
	}
	j, err := json.Marshal(tree)
	if err != nil {
		t.Fatal(err)
	}
	y, err := yaml.Marshal(tree)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		data []byte
		dec  func([]byte) (*Tree, error)
	}{{"json", j, DecodeJSON}, {"yaml", y, DecodeYAML}, {"json via Decode", j, Decode}, {"yaml via Decode", y, Decode}} {
		got, err := c.dec(c.data)
		if err != nil {
			t.Fatalf("%s: %v\n%s", c.name, err, c.data)
		}
		if !reflect.DeepEqual(got, tree) {
			t.Fatalf("%s: round trip changed the tree\nbefore %+v\nafter  %+v\n%s", c.name, tree, got, c.data)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	roundTrip(t, loadSeed(t, "yaml"))
	for seed := range uint64(200) {
		roundTrip(t, randomTree(rand.New(rand.NewPCG(seed, 0x5eed))))
	}
}

func TestDecodeAccepts(t *testing.T) {
	for name, doc := range map[string]string{
		"symbolic limit types in JSON": `{"id": "t", "root": "a", "nodes": [{"id": "a", "type": "branch", "ruleKey": "userAge", "default": "b"}, {"id": "b", "type": "leaf", "value": 3}],
			"lines": [{"from": "a", "to": "b", "limitType": ">=", "limitValue": 18}, {"from": "a", "to": "b", "limitType": "enum", "limitValue": [1, "2"]}]}`,
		"numeric ids and types in YAML": "id: t\nroot: 1\nnodes:\n- {id: 1, type: 1, ruleKey: userCity, default: 2}\n- {id: 2, type: 2, value: 5}\nlines:\n- {from: 1, to: 2, limitType: 6, limitValue: [beijing, shanghai]}\n",
		"leading blanks before JSON":    " \n\t{\"id\": \"t\", \"root\": \"a\", \"nodes\": [{\"id\": \"a\", \"type\": 2}]}",
	} {
		tree, err := Decode([]byte(doc))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if err := tree.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	many := func(n int, item string) string { return strings.TrimSuffix(strings.Repeat(item+",", n), ",") }
	for _, c := range []struct {
		name, doc, want string
	}{
		{"unknown JSON field", `{"id": "t", "root": "a", "nodes": [], "colour": "red"}`, `unknown field "colour"`},
		{"unknown JSON field in a node", `{"id": "t", "root": "a", "nodes": [{"id": "a", "type": 2, "weight": 1}]}`, `unknown field "weight"`},
		{"unknown YAML field", "id: t\nroot: a\nnodes: []\ncolour: red\n", "field colour not found"},
		{"unknown YAML field in a line", "id: t\nroot: a\nlines:\n- {from: a, to: b, limitType: 1, limitValue: 1, note: x}\n", "field note not found"},
		{"JSON trailing data", `{"id": "t"} {"id": "u"}`, "data after the tree"},
		{"JSON syntax", `{"id": "t",}`, "decode JSON"},
		{"JSON float value", `{"id": "t", "nodes": [{"id": "a", "type": 2, "value": 1.5}]}`, "decode JSON"},
		{"JSON bad limit type", `{"id": "t", "lines": [{"limitType": "!="}]}`, "limit type"},
		{"JSON object as a limit value", `{"id": "t", "lines": [{"limitValue": {"a": 1}}]}`, "limit value"},
		{"two YAML documents", "id: t\n---\nid: u\n", "more than one document"},
		{"empty YAML", "", "empty document"},
		{"YAML alias", "id: t\nroot: &r a\nnodes:\n- {id: *r, type: 2}\n", "aliases"},
		{"YAML float", "id: t\nnodes:\n- {id: a, type: 2, value: 1.5}\n", "float"},
		{"YAML nesting", "id: t\nlines:\n- {limitValue: " + strings.Repeat("[", 20) + strings.Repeat("]", 20) + "}\n", "nested"},
		{"YAML map as a limit value", "lines:\n- {limitValue: {a: 1}}\n", "limit value"},
		{"YAML bad node type", "nodes:\n- {type: twig}\n", "node type"},
		{"document too big", `{"id": "` + strings.Repeat("x", MaxDocumentSize) + `"}`, "at most"},
		{"too many nodes", `{"id": "t", "nodes": [` + many(MaxNodes+1, `{}`) + `]}`, "nodes (at most"},
		{"too many lines", `{"id": "t", "lines": [` + many(MaxLines+1, `{}`) + `]}`, "lines (at most"},
		{"string too long", `{"id": "t", "root": "` + strings.Repeat("r", MaxStringLen+1) + `"}`, "longer than"},
		{"enum too long", `{"id": "t", "lines": [{"limitValue": [` + many(MaxEnumValues+1, `"v"`) + `]}]}`, "limit values (at most"},
		{"too many values", `{"id": "t", "lines": [` + many(MaxValues/MaxEnumValues+1, `{"limitValue": [`+many(MaxEnumValues, `1`)+`]}`) + `]}`, "limit values of"},
	} {
		_, err := Decode([]byte(c.doc))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error with %q", c.name, err, c.want)
		}
	}
}

// FuzzDecode: decoding never panics, whatever decodes is within the
// bounds, validating it never panics, and a valid tree compiles.
func FuzzDecode(f *testing.F) {
	for _, name := range []string{"testdata/seed_tree.yaml", "testdata/seed_tree.json"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"id": "t", "root": "a", "nodes": [{"id": "a", "type": "branch", "ruleKey": "userTags", "default": "a"}], "lines": [{"from": "a", "to": "a", "limitType": "enum", "limitValue": ["x", 2]}]}`))
	f.Add([]byte("id: t\nroot: &a x\nnodes: [{id: *a, type: 2}]\n"))
	f.Add([]byte("- [1, 2]\n- {a: b}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tree, err := Decode(data)
		if err != nil {
			return
		}
		if err := checkBounds(tree); err != nil {
			t.Fatalf("decoded a tree beyond the bounds: %v", err)
		}
		if tree.Validate() != nil {
			return
		}
		if _, err := Compile(tree); err != nil {
			t.Fatalf("a valid tree does not compile: %v", err)
		}
		// What decodes and validates survives a round trip.
		var buf bytes.Buffer
		if err := json.NewEncoder(&buf).Encode(tree); err != nil {
			t.Fatal(err)
		}
		again, err := DecodeJSON(buf.Bytes())
		if err != nil || again.Validate() != nil {
			t.Fatalf("re-decoding %s: %v", buf.Bytes(), err)
		}
	})
}
