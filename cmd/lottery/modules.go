package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/flashlottery/lottery/rules"
	"github.com/flashlottery/lottery/server"
)

// adminFlags are the flags of the commands that talk to a running edge.
type adminFlags struct{ url, token, data *string }

func addAdminFlags(fs *flag.FlagSet) adminFlags {
	return adminFlags{
		url:   fs.String("url", "http://127.0.0.1:8080", "edge base URL"),
		token: fs.String("token", "", "admin token (default: $LOTTERY_ADMIN_TOKEN or DATA/admin.token)"),
		data:  fs.String("data", "data", "the edge's data directory, to find admin.token"),
	}
}

// adminToken returns --token, else $LOTTERY_ADMIN_TOKEN, else the
// contents of DATA/admin.token; the error is the file's when none is found.
func (a adminFlags) adminToken() (string, error) {
	if *a.token != "" {
		return *a.token, nil
	}
	if tok := os.Getenv("LOTTERY_ADMIN_TOKEN"); tok != "" {
		return tok, nil
	}
	b, err := os.ReadFile(filepath.Join(*a.data, "admin.token"))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// send sends an admin request to the edge (without a token when none is
// found: the edge answers 401) and returns the answer, its body read (at
// most 16 MiB) and closed.
func (a adminFlags) send(ctx context.Context, method, path string, body []byte, timeout time.Duration) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(*a.url, "/")+path, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	tok, _ := a.adminToken()
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := (&http.Client{Timeout: timeout}).Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, nil, err
	}
	return resp, out, nil
}

// call sends an admin request and prints the JSON answer indented.
func (a adminFlags) call(ctx context.Context, method, path string, body []byte) error {
	resp, out, err := a.send(ctx, method, path, body, time.Minute)
	if err != nil {
		return err
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, out, "", "  ") == nil {
		out = pretty.Bytes()
	}
	fmt.Println(string(out))
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s", resp.Status)
	}
	return nil
}

// rulesCmd is `lottery rules compile|test|push FILE`.
func rulesCmd(ctx context.Context, args []string) error {
	const usage = "usage: lottery rules compile FILE [--out F.wasm] | test FILE --attrs JSON | push FILE [--url URL] [--token T]"
	if len(args) < 2 {
		return errors.New(usage)
	}
	verb, file := args[0], args[1]
	fs := flag.NewFlagSet("rules "+verb, flag.ContinueOnError)
	out := fs.String("out", "", "compile: write the module here")
	attrs := fs.String("attrs", "{}", `test: the attributes, e.g. {"userGender":"man","userAge":20}`)
	admin := addAdminFlags(fs)
	if err := fs.Parse(args[2:]); err != nil {
		return err
	}
	src, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if verb == "push" {
		return admin.call(ctx, http.MethodPost, "/api/v1/rules/trees", src)
	}
	t, err := rules.Decode(src)
	if err != nil {
		return err
	}
	if err := t.Validate(); err != nil {
		return fmt.Errorf("rule tree %q is invalid:\n%w", t.ID, err)
	}
	switch verb {
	case "compile":
		bin, err := rules.Compile(t)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(bin)
		fmt.Printf("tree %s: %d nodes, %d lines -> %d bytes, sha256 %s\n", t.ID, len(t.Nodes), len(t.Lines), len(bin), hex.EncodeToString(sum[:]))
		if *out != "" {
			return os.WriteFile(*out, bin, 0o644)
		}
		return nil
	case "test":
		var raw map[string]json.RawMessage
		if err := json.Unmarshal([]byte(*attrs), &raw); err != nil {
			return fmt.Errorf("--attrs: %w", err)
		}
		in, err := server.ParseAttributes(raw)
		if err != nil {
			return err
		}
		id, matched, err := rules.Evaluate(t, in)
		if err != nil {
			return err
		}
		if !matched {
			fmt.Println("no match")
			return nil
		}
		fmt.Printf("activity %d\n", id)
		return nil
	}
	return errors.New(usage)
}

// modulesCmd is `lottery modules list|push|rollback`.
func modulesCmd(ctx context.Context, args []string) error {
	const usage = "usage: lottery modules list | push NAME draw|rule FILE.wasm | rollback NAME SHA256 [--url URL] [--token T]"
	if len(args) < 1 {
		return errors.New(usage)
	}
	verb, rest := args[0], args[1:]
	var pos []string
	for len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		pos, rest = append(pos, rest[0]), rest[1:]
	}
	fs := flag.NewFlagSet("modules "+verb, flag.ContinueOnError)
	admin := addAdminFlags(fs)
	if err := fs.Parse(rest); err != nil {
		return err
	}
	switch {
	case verb == "list" && len(pos) == 0:
		return admin.call(ctx, http.MethodGet, "/api/v1/modules", nil)
	case verb == "push" && len(pos) == 3:
		bin, err := os.ReadFile(pos[2])
		if err != nil {
			return err
		}
		q := url.Values{"name": {pos[0]}, "kind": {pos[1]}}
		return admin.call(ctx, http.MethodPost, "/api/v1/modules?"+q.Encode(), bin)
	case verb == "rollback" && len(pos) == 2:
		body, _ := json.Marshal(map[string]string{"sha256": pos[1]})
		return admin.call(ctx, http.MethodPost, "/api/v1/modules/"+pos[0]+"/rollback", body)
	}
	return errors.New(usage)
}
