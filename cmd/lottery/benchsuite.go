package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/flashlottery/lottery/loadgen"
)

// benchsuite runs `make bench`: the bare handler against the draw endpoint
// of each edge profile, written as markdown (and into --out).
func benchsuite(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("benchsuite", flag.ContinueOnError)
	cfg := loadgen.SuiteConfig{Log: os.Stderr}
	fs.StringVar(&cfg.Bin, "bin", "bin/lottery", "the lottery binary to start as the server")
	fs.StringVar(&cfg.ServerCPU, "server-cpu", "0", "core for the server (taskset -c); run this command on another")
	fs.IntVar(&cfg.Requests, "requests", 200000, "requests per run for the bare handler and the flash sales")
	fs.IntVar(&cfg.AllWinRequests, "allwin-requests", 30000, "requests for the all-win runs")
	fs.IntVar(&cfg.Concurrency, "concurrency", 64, "connections")
	fs.IntVar(&cfg.Rounds, "rounds", 10, "rounds of each native-against-Wasm comparison (each variant goes first in every other round)")
	fs.DurationVar(&cfg.ReloadDuration, "reload-duration", 20*time.Second, "how long the hot-reload scenario draws while ten versions are pushed")
	profiles := fs.String("profiles", "", "comma-separated edge profiles to run (default all): "+strings.Join(loadgen.ProfileNames(), ", "))
	out := fs.String("out", "", "markdown file to write (replaces the section between the suite markers)")
	section := fs.String("section", "benchsuite", "name of the section of --out to replace")
	edgeConf := fs.String("edge-config", "", "YAML file appended to every edge's config (e.g. orders: {dbCount: 1, tbCount: 1}); it must not set what a profile sets")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *profiles != "" {
		cfg.Profiles = strings.Split(*profiles, ",")
	}
	if *edgeConf != "" {
		b, err := os.ReadFile(*edgeConf)
		if err != nil {
			return err
		}
		cfg.EdgeConfig = string(b)
	}
	suite, err := loadgen.RunSuite(ctx, cfg)
	if err != nil {
		return err
	}
	var md strings.Builder
	command := strings.TrimSpace("taskset -c 1 bin/lottery benchsuite " + strings.Join(args, " "))
	if err := loadgen.WriteMarkdown(&md, command, suite); err != nil {
		return err
	}
	fmt.Print(md.String())
	if *out != "" {
		if err := loadgen.ReplaceSection(*out, *section, md.String()); err != nil {
			return err
		}
	}
	if len(suite.Failed) > 0 {
		return fmt.Errorf("benchsuite: %d profile(s) failed: %s", len(suite.Failed), strings.Join(suite.Failed, "; "))
	}
	return nil
}
