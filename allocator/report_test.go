package allocator

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// load holds count buffers of size from a and puts them back, so that the
// report shows a peak of count.
func load(t testing.TB, a *Allocator, size, count int) {
	t.Helper()
	var bufs []*Buf
	for range count {
		bufs = append(bufs, a.Get(size))
	}
	a.Report() // sample the peak
	for _, b := range bufs {
		a.Put(b)
	}
}

func TestReportRoundTrip(t *testing.T) {
	a := newTest(t, Config{})
	load(t, a, 300, 5)
	load(t, a, 65536, 2)
	var buf bytes.Buffer
	if err := a.WriteReport(&buf); err != nil {
		t.Fatal(err)
	}
	r, err := ReadReport(&buf)
	if err != nil {
		t.Fatal(err)
	}
	want := a.Report()
	if len(r.Classes) != len(want.Classes) || r.RetainedBytes != want.RetainedBytes {
		t.Fatalf("read back %+v, want %+v", r, want)
	}
	for i := range r.Classes {
		if r.Classes[i] != want.Classes[i] {
			t.Errorf("class %d: read back %+v, want %+v", i, r.Classes[i], want.Classes[i])
		}
	}
	if cr := r.Classes[1]; cr.Size != 512 || cr.PeakInUse != 5 || cr.Retained != 5 {
		t.Errorf("class 512: %+v, want peak 5 and 5 retained", cr)
	}
}

func TestReadReportErrors(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"not json", "hello", "reading allocator report"},
		{"other version", `{"version": 2}`, ErrReportVersion.Error()},
		{"no version", `{"classes": []}`, ErrReportVersion.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadReport(strings.NewReader(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ReadReport: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestWarm(t *testing.T) {
	last := Report{Version: ReportVersion, Classes: []ClassReport{
		{Size: 256, PeakInUse: 400},  // 100 KiB
		{Size: 4096, PeakInUse: 25},  // 100 KiB
		{Size: 65536, PeakInUse: 4},  // 256 KiB
		{Size: 777, PeakInUse: 1000}, // not a class here: ignored
		{Size: 1024, PeakInUse: 0},   // unused: nothing
	}}
	tests := []struct {
		name     string
		maxBytes int64
		share    float64
		want     map[int]int64 // retained buffers per class
	}{
		{name: "fits", maxBytes: 4 << 20, share: 0.5, want: map[int]int64{256: 400, 4096: 25, 65536: 4}},
		// 456 KiB wanted, 228 KiB allowed: every class halved.
		{name: "scaled down", maxBytes: 456 << 10, share: 0.5, want: map[int]int64{256: 200, 4096: 12, 65536: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newTest(t, Config{MaxBytes: tt.maxBytes, WarmupShare: tt.share})
			added := a.Warm(last)
			r := a.Report()
			if added != r.RetainedBytes {
				t.Errorf("Warm returned %d, retained %d", added, r.RetainedBytes)
			}
			if limit := int64(tt.share * float64(tt.maxBytes)); r.RetainedBytes > limit {
				t.Errorf("warmed %d bytes, past warmup_share * max_bytes = %d", r.RetainedBytes, limit)
			}
			for _, cr := range r.Classes {
				if cr.Retained != tt.want[cr.Size] {
					t.Errorf("class %d: %d retained, want %d", cr.Size, cr.Retained, tt.want[cr.Size])
				}
				if cr.Gets != 0 || cr.InUse != 0 {
					t.Errorf("class %d: warm-up counted as use: %+v", cr.Size, cr)
				}
			}
			// Warming twice tops up, it does not add again.
			if again := a.Warm(last); again != 0 {
				t.Errorf("second Warm added %d bytes", again)
			}
			// The warmed buffers serve Gets as hits.
			b := a.Get(3000)
			if cr := classReport(t, a, 4096); cr.Hits != 1 {
				t.Errorf("Get after Warm: %+v, want a hit", cr)
			}
			a.Put(b)
		})
	}
}

func TestRunWarmsAndSaves(t *testing.T) {
	path := filepath.Join(t.TempDir(), "allocator.json")
	cfg := Config{WarmupFile: path}

	// First run: no file yet (cold start), traffic, report saved at stop.
	a := newTest(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	load(t, a, 1500, 30)
	waitFor(t, "Run to start", a.running.Load)
	if err := a.Run(ctx); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run: %v, want ErrRunning", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("report not saved: %v", err)
	}
	saved, err := ReadReport(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if cr := saved.Classes[3]; cr.Size != 2048 || cr.PeakInUse != 30 {
		t.Fatalf("saved class 2048: %+v, want peak 30", cr)
	}

	// Second run: warmed from the file before traffic.
	b := newTest(t, cfg)
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	go func() { done <- b.Run(ctx) }()
	waitFor(t, "warm-up of class 2048 to 30 buffers", func() bool { return classReport(t, b, 2048).Retained == 30 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestRunSkipsBadWarmupFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "allocator.json")
	if err := os.WriteFile(path, []byte("not a report"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := newTest(t, Config{WarmupFile: path})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := ReadReport(f); err != nil {
		t.Fatalf("bad file not replaced by a report at stop: %v", err)
	}
}

func TestRunSaveError(t *testing.T) {
	a := newTest(t, Config{WarmupFile: filepath.Join(t.TempDir(), "missing-dir", "allocator.json")})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.Run(ctx); err == nil || !strings.Contains(err.Error(), "saving allocator report") {
		t.Fatalf("Run: %v, want a saving error", err)
	}
}

func TestCollector(t *testing.T) {
	a := newTest(t, Config{Classes: []int{256, 1024}})
	b := a.Get(100)
	a.Put(a.Get(1000))
	a.Put(a.Get(2000)) // oversize
	want := `
# HELP sipd_allocator_gets_total Buffers requested, by size class (bytes, or oversize).
# TYPE sipd_allocator_gets_total counter
sipd_allocator_gets_total{class="1024"} 1
sipd_allocator_gets_total{class="256"} 1
sipd_allocator_gets_total{class="oversize"} 1
# HELP sipd_allocator_in_use_bytes Bytes of buffers handed out and not given back, by size class.
# TYPE sipd_allocator_in_use_bytes gauge
sipd_allocator_in_use_bytes{class="1024"} 0
sipd_allocator_in_use_bytes{class="256"} 256
sipd_allocator_in_use_bytes{class="oversize"} 0
# HELP sipd_allocator_retained_bytes Bytes held in free lists, by size class.
# TYPE sipd_allocator_retained_bytes gauge
sipd_allocator_retained_bytes{class="1024"} 1024
sipd_allocator_retained_bytes{class="256"} 0
sipd_allocator_retained_bytes{class="oversize"} 0
# HELP sipd_allocator_wasted_bytes Bytes of buffers in use lost to rounding up to the size class, by size class.
# TYPE sipd_allocator_wasted_bytes gauge
sipd_allocator_wasted_bytes{class="1024"} 0
sipd_allocator_wasted_bytes{class="256"} 156
sipd_allocator_wasted_bytes{class="oversize"} 0
`
	if err := testutil.CollectAndCompare(a.Collector(), strings.NewReader(want),
		"sipd_allocator_gets_total", "sipd_allocator_in_use_bytes", "sipd_allocator_retained_bytes", "sipd_allocator_wasted_bytes"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(a.Collector()); n != 8*3+1 {
		t.Errorf("%d metrics, want %d", n, 8*3+1)
	}
	if problems, err := testutil.CollectAndLint(a.Collector()); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
	a.Put(b)
}

// waitFor polls cond until it holds, failing the test after a deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
