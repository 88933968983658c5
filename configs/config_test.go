package configs

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefaultValid(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	a, s := Demo(time.Now())
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if !a.Open(time.Now()) {
		t.Fatal("demo activity is not open now")
	}
}

// TestEmbeddedYAMLIsDefault keeps embedded.yaml and Default in step.
func TestEmbeddedYAMLIsDefault(t *testing.T) {
	c, err := Load("embedded.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if want := Default(); !reflect.DeepEqual(c, want) {
		t.Fatalf("embedded.yaml differs from Default():\n got %+v\nwant %+v", c, want)
	}
}

func TestLoadRejects(t *testing.T) {
	dir := t.TempDir()
	tests := []struct{ name, yaml, want string }{
		{"unknown key", "adress: x\n", "field adress not found"},
		{"bad type", "node: many\n", "cannot unmarshal"},
		{"bad addr", "addr: nowhere\n", "addr"},
		{"short retention", "kafka:\n  retention: 10s\n", "kafka.retention 10s"},
		{"many problems", "node: 5000\nadminToken: short\norders:\n  dbCount: 0\n", "node must be"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".yaml")
			if err := os.WriteFile(p, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := Load(p)
			if err == nil {
				err = c.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
	// Validate reports every problem at once.
	c := Default()
	c.Node, c.AdminToken, c.Orders.DBCount = 5000, "short", 0
	err := c.Validate()
	for _, want := range []string{"node", "adminToken", "dbCount"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("error %v does not mention %s", err, want)
		}
	}
}

func TestApplyEnv(t *testing.T) {
	c := Default()
	env := map[string]string{"LOTTERY_ADMIN_TOKEN": "0123456789abcdef", "LOTTERY_ADDR": "0.0.0.0:9000"}
	c.ApplyEnv(func(k string) string { return env[k] })
	if c.AdminToken != env["LOTTERY_ADMIN_TOKEN"] || c.Addr != env["LOTTERY_ADDR"] || c.DataDir != "data" {
		t.Fatalf("env not applied: %+v", c)
	}
}

func TestProductionYAMLValid(t *testing.T) {
	c, err := Load("production.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Stock.Backend != "redis" || c.Orders.Backend != "mysql" || c.Analytics.Backend != "clickhouse" || len(c.Kafka.Brokers) != 1 {
		t.Fatalf("production.yaml does not name the production backends: %+v", c)
	}
}

// FuzzParse: whatever a config file holds, Parse and Validate answer with
// an error or a config, never a panic or a hang.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"embedded.yaml", "production.yaml", "bench/orders-1x1.yaml"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("http: {maxBodyBytes: -1}\nmodules: {fuel: 99999999999999}\n"))
	f.Add([]byte("orders: {dbCount: 1000000}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := Parse(b)
		if err != nil {
			return
		}
		_ = cfg.Validate()
	})
}
