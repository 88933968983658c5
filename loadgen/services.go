package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"time"
)

// The real servers of the Redis and MariaDB profiles come from
// scripts/services.sh (`make services`), which writes their addresses to
// .services/env as the variables the tests read.
const (
	envRedis = "LOTTERY_TEST_REDIS"
	envMySQL = "LOTTERY_TEST_MYSQL"
)

// redisYAML configures the Redis stock under a key prefix of its own.
func redisYAML(addr, prefix string) string {
	return fmt.Sprintf("stock:\n  backend: redis\n  redis:\n    addr: %q\n    prefix: %q\n", addr, prefix)
}

// mysqlDSN is the part of a go-sql-driver DSN the suite needs:
// [user[:password]@][net(addr)]/dbname[?params].
type mysqlDSN struct {
	user, password, addr, params string
}

var dsnRE = regexp.MustCompile(`^(?:([^:@]*)(?::([^@]*))?@)?(?:tcp\(([^)]*)\))?/([^?]*)(\?.*)?$`)

func parseMySQLDSN(dsn string) (mysqlDSN, error) {
	m := dsnRE.FindStringSubmatch(dsn)
	if m == nil {
		return mysqlDSN{}, fmt.Errorf("%s %q: want user[:password]@tcp(host:port)/[?params]", envMySQL, dsn)
	}
	d := mysqlDSN{user: m[1], password: m[2], addr: m[3], params: m[5]}
	if d.addr == "" {
		d.addr = "127.0.0.1:3306"
	}
	return d, nil
}

// with returns the DSN of database db on the same server.
func (d mysqlDSN) with(db string) string {
	auth := d.user
	if d.password != "" {
		auth += ":" + d.password
	}
	return auth + "@tcp(" + d.addr + ")/" + db + d.params
}

// mysqlYAML configures the MariaDB orders store on fresh databases: base
// and one per shard database of a dbCount x tbCount layout.
func mysqlYAML(d mysqlDSN, base string, dbCount, tbCount int) (yaml string, dbs []string) {
	dbs = []string{base}
	for i := range dbCount {
		dbs = append(dbs, fmt.Sprintf("%s_%02d", base, i))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "orders:\n  backend: mysql\n  dbCount: %d\n  tbCount: %d\n  mysql:\n    base: %q\n    shards:\n", dbCount, tbCount, d.with(dbs[0]))
	for _, db := range dbs[1:] {
		fmt.Fprintf(&b, "      - %q\n", d.with(db))
	}
	return b.String(), dbs
}

// dropDatabases drops the run's databases with the mariadb (or mysql)
// client, the only MySQL client the suite may use (the driver belongs to
// orders). It returns what it did, for the report.
func dropDatabases(ctx context.Context, d mysqlDSN, dbs []string) string {
	client := ""
	for _, c := range []string{"mariadb", "mysql"} {
		if _, err := exec.LookPath(c); err == nil {
			client = c
			break
		}
	}
	if client == "" {
		return fmt.Sprintf("databases %s left on the MariaDB server (no mariadb client to drop them)", strings.Join(dbs, ", "))
	}
	host, port, _ := strings.Cut(d.addr, ":")
	args := []string{"-h" + host, "-u" + d.user}
	if port != "" {
		args = append(args, "-P"+port)
	}
	if d.password != "" {
		args = append(args, "-p"+d.password)
	}
	var sql []string
	for _, db := range dbs {
		sql = append(sql, "DROP DATABASE IF EXISTS `"+db+"`")
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, client, append(args, "-e", strings.Join(sql, "; "))...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Sprintf("dropping databases %s failed: %v %s", strings.Join(dbs, ", "), err, strings.TrimSpace(out.String()))
	}
	return ""
}

// deleteRedisKeys deletes the keys under prefix with redis-cli, for the
// same reason; it returns what went wrong, if anything.
func deleteRedisKeys(ctx context.Context, addr, prefix string) string {
	if _, err := exec.LookPath("redis-cli"); err != nil {
		return fmt.Sprintf("Redis keys %s* left (no redis-cli to delete them)", prefix)
	}
	host, port, _ := strings.Cut(addr, ":")
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	base := []string{"-h", host, "-p", port}
	keys, err := exec.CommandContext(ctx, "redis-cli", append(base, "--scan", "--pattern", prefix+"*")...).Output()
	if err != nil {
		return fmt.Sprintf("Redis keys %s* left: %v", prefix, err)
	}
	list := strings.Fields(string(keys))
	for len(list) > 0 {
		n := min(len(list), 500)
		if out, err := exec.CommandContext(ctx, "redis-cli", append(append(base, "DEL"), list[:n]...)...).CombinedOutput(); err != nil {
			return fmt.Sprintf("Redis keys %s* left: %v %s", prefix, err, out)
		}
		list = list[n:]
	}
	return ""
}
