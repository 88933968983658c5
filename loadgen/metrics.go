package loadgen

import (
	"bufio"
	"bytes"
	"strconv"
	"strings"
)

// Metrics is a scrape of an edge's /metrics: each sample's value by its
// name with labels, as written ("lottery_draws_total{outcome=\"win\"}").
type Metrics map[string]float64

// ParseMetrics reads the Prometheus text format; comments and lines it
// cannot read are skipped.
func ParseMetrics(b []byte) Metrics {
	m := Metrics{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		// The value follows the last space outside the labels; an optional
		// timestamp would follow it, and the edge writes none.
		end := strings.LastIndexByte(line, '}')
		i := strings.IndexByte(line[end+1:], ' ')
		if i < 0 {
			continue
		}
		i += end + 1
		f := strings.Fields(line[i+1:])
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		m[line[:i]] = v
	}
	return m
}

// Sum adds the samples of the metric name over all its labels.
func (m Metrics) Sum(name string) float64 {
	var s float64
	for k, v := range m {
		if k == name || strings.HasPrefix(k, name+"{") {
			s += v
		}
	}
	return s
}

// Has reports whether the scrape has the metric name.
func (m Metrics) Has(name string) bool {
	for k := range m {
		if k == name || strings.HasPrefix(k, name+"{") {
			return true
		}
	}
	return false
}
