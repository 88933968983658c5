package server

import (
	"os"
	"testing"
)

// TestRuleDraw compiles the seed's example tree over HTTP and draws through
// it: the tree picks the demo activity for a young man.
func TestRuleDraw(t *testing.T) {
	e := startEdge(t, nil)
	tree, err := os.ReadFile("../rules/testdata/seed_tree.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if st, m := e.do("POST", "/api/v1/rules/trees", testToken, tree); st != 201 || m["treeId"] != "seed-gender-age" {
		t.Fatalf("upload tree: %d %v", st, m)
	}
	st, m := e.do("POST", "/api/v1/draw/rule", "", []byte(`{"userId":"kim","treeId":"seed-gender-age","attributes":{"userGender":"man","userAge":20}}`))
	if st != 200 || m["activityId"] != float64(100001) || (m["outcome"] != "win" && m["outcome"] != "lose") {
		t.Fatalf("rule draw: %d %v", st, m)
	}
	for _, tt := range []struct {
		body   string
		status int
		code   string
	}{
		{`{"userId":"kim","treeId":"seed-gender-age","attributes":{"userGender":"other"}}`, 409, "no_match"},
		{`{"userId":"kim","treeId":"nope","attributes":{}}`, 404, "not_found"},
		{`{"userId":"kim","treeId":"seed-gender-age","attributes":{"userAge":"old"}}`, 400, "invalid_argument"},
		{`{"userId":"kim","treeId":"seed-gender-age","attributes":{"shoeSize":44}}`, 400, "invalid_argument"},
		{`{"treeId":"seed-gender-age"}`, 400, "invalid_argument"},
	} {
		if st, m := e.do("POST", "/api/v1/draw/rule", "", []byte(tt.body)); st != tt.status || m["code"] != tt.code {
			t.Errorf("%s: %d %v, want %d %s", tt.body, st, m, tt.status, tt.code)
		}
	}
	bad := []byte("id: broken\nroot: \"1\"\nnodes:\n  - {id: \"1\", type: branch, ruleKey: userAge}\n")
	if st, m := e.do("POST", "/api/v1/rules/trees", testToken, bad); st != 400 || m["code"] != "invalid_argument" {
		t.Fatalf("invalid tree: %d %v", st, m)
	}
}
