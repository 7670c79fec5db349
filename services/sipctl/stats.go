package sipctl

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// maxMetricsBytes bounds how much of a /metrics page is read.
const maxMetricsBytes = 16 << 20

// Stat is one summed sipd metric series of one service.
type Stat struct {
	Source string  `json:"source"`
	Name   string  `json:"name"`
	Labels string  `json:"labels,omitempty"`
	Value  float64 `json:"value"`
}

// runStats reads the Prometheus text of each -metrics URL and shows its
// sipd_* series; histograms are shown as their count and sum.
func runStats(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("stats")
	urls := fs.String("metrics", envOr(c.getenv, EnvMetrics, DefaultMetrics), "comma-separated /metrics URLs (env "+EnvMetrics+")")
	all := fs.Bool("all", false, "show every series, not only sipd_*")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	var stats []Stat
	for _, u := range strings.Split(*urls, ",") {
		u = strings.TrimSpace(u)
		if u == "" {
			continue
		}
		if !strings.Contains(u, "://") {
			u = "http://" + u
		}
		if !strings.Contains(strings.SplitN(u, "://", 2)[1], "/") {
			u += "/metrics"
		}
		s, err := scrape(ctx, u, *all)
		if err != nil {
			return err
		}
		stats = append(stats, s...)
	}
	if c.opts.Output == "json" {
		if stats == nil {
			stats = []Stat{}
		}
		return writeJSON(c.stdout, stats)
	}
	t := newTable(c.stdout, "SOURCE", "METRIC", "LABELS", "VALUE")
	for _, s := range stats {
		t.row(s.Source, s.Name, s.Labels, strconv.FormatFloat(s.Value, 'f', -1, 64))
	}
	return t.flush()
}

// scrape fetches one metrics page and parses its sample lines.
func scrape(ctx context.Context, url string, all bool) ([]Stat, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", url, err)
	}
	req.Header.Set("Accept", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("reading %s: %s", url, resp.Status)
	}
	return parseMetrics(io.LimitReader(resp.Body, maxMetricsBytes), url, all)
}

// parseMetrics reads Prometheus text exposition lines. Histogram buckets
// are skipped (their _count and _sum are kept).
func parseMetrics(r io.Reader, source string, all bool) ([]Stat, error) {
	var out []Stat
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		name, labels, rest := line, "", ""
		if i := strings.IndexByte(line, '{'); i >= 0 {
			j := strings.LastIndexByte(line, '}')
			if j < i {
				continue
			}
			name, labels, rest = line[:i], line[i+1:j], strings.TrimSpace(line[j+1:])
		} else if i := strings.IndexAny(line, " \t"); i >= 0 {
			name, rest = line[:i], strings.TrimSpace(line[i+1:])
		}
		if (!all && !strings.HasPrefix(name, "sipd_")) || strings.HasSuffix(name, "_bucket") {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		out = append(out, Stat{Source: source, Name: name, Labels: labels, Value: v})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", source, err)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
