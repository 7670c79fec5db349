package allocator

import (
	"runtime"
	"strings"
	"sync"
	"testing"
)

func newTest(t testing.TB, cfg Config) *Allocator {
	t.Helper()
	a, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return a
}

// classReport returns a's report for the class of the given size.
func classReport(t testing.TB, a *Allocator, size int) ClassReport {
	t.Helper()
	for _, cr := range a.Report().Classes {
		if cr.Size == size {
			return cr
		}
	}
	t.Fatalf("no class of size %d", size)
	return ClassReport{}
}

func mustPanic(t *testing.T, want string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		if r == nil {
			t.Fatalf("no panic, want one containing %q", want)
		}
		if s, _ := r.(string); !strings.Contains(s, want) {
			t.Fatalf("panic %v, want one containing %q", r, want)
		}
	}()
	f()
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings of the error; none: valid
	}{
		{name: "defaults", cfg: Config{}},
		{name: "custom", cfg: Config{Classes: []int{100, 1500, 9000}, MaxBytes: 1 << 20, MaxPerClass: 10, WarmupShare: 1}},
		{name: "not ascending", cfg: Config{Classes: []int{512, 256}}, want: []string{"classes[1] (256) must be > classes[0] (512)"}},
		{name: "duplicate", cfg: Config{Classes: []int{256, 256}}, want: []string{"classes[1] (256) must be > classes[0] (256)"}},
		{name: "zero class", cfg: Config{Classes: []int{0, 256}}, want: []string{"classes[0] (0) must be > 0"}},
		{name: "huge class", cfg: Config{Classes: []int{MaxClassSize + 1}}, want: []string{"must be <= "}},
		{name: "every problem at once", cfg: Config{MaxBytes: -1, MaxPerClass: -2, WarmupShare: 1.5},
			want: []string{"max_bytes (-1) must be >= 0", "max_per_class (-2) must be >= 0", "warmup_share (1.5) must be between 0 and 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.SetDefaults()
			err := cfg.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if _, err := New(tt.cfg); err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate: nil, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate: %v, want it to contain %q", err, w)
				}
			}
			if _, err := New(tt.cfg); err == nil {
				t.Error("New accepted an invalid config")
			}
		})
	}
}

func TestGetSizes(t *testing.T) {
	a := newTest(t, Config{})
	tests := []struct {
		n, wantCap int
	}{
		{0, 256}, {1, 256}, {256, 256}, {257, 512}, {1500, 2048},
		{4096, 4096}, {65535, 65536}, {65536, 65536},
		{65537, 65537}, // oversize: plain allocation
		{1 << 20, 1 << 20},
	}
	for _, tt := range tests {
		b := a.Get(tt.n)
		if len(b.B) != tt.n || cap(b.B) != tt.wantCap {
			t.Errorf("Get(%d): len %d cap %d, want len %d cap %d", tt.n, len(b.B), cap(b.B), tt.n, tt.wantCap)
		}
		a.Put(b)
	}
	mustPanic(t, "negative size", func() { a.Get(-1) })
}

func TestPutThenGetReuses(t *testing.T) {
	a := newTest(t, Config{})
	b1 := a.Get(1000)
	b1.B[0] = 'x'
	a.Put(b1)
	b2 := a.Get(700) // same class (1024)
	if b2 != b1 {
		t.Fatalf("Get after Put returned a new buffer, want the one put back")
	}
	if len(b2.B) != 700 || b2.B[0] != 'x' {
		t.Fatalf("reused buffer: len %d first byte %q, want 700 and the old contents (not zeroed)", len(b2.B), b2.B[0])
	}
	cr := classReport(t, a, 1024)
	want := ClassReport{Size: 1024, Gets: 2, Hits: 1, Misses: 1, Puts: 1, InUse: 1, PeakInUse: 1, InUseBytes: 1024, WastedBytes: 1024 - 700}
	if cr != want {
		t.Fatalf("report\n got %+v\nwant %+v", cr, want)
	}
	a.Put(b2)
	cr = classReport(t, a, 1024)
	if cr.InUse != 0 || cr.WastedBytes != 0 || cr.Retained != 1 || cr.RetainedBytes != 1024 {
		t.Fatalf("after Put: %+v, want nothing in use, nothing wasted, one retained", cr)
	}
}

func TestPutDropsWhatDoesNotFit(t *testing.T) {
	tests := []struct {
		name   string
		cfg    Config
		change func(b *Buf)
		puts   int // buffers of 4096 put back at once
		retain int64
	}{
		{name: "kept", puts: 3, retain: 3},
		{name: "grown past its class", change: func(b *Buf) { b.B = append(b.B[:cap(b.B)], 'x') }, puts: 3, retain: 0},
		{name: "replaced by a smaller slice", change: func(b *Buf) { b.B = b.B[:10:10] }, puts: 3, retain: 0},
		{name: "max_bytes", cfg: Config{MaxBytes: 2 * 4096}, puts: 3, retain: 2},
		{name: "max_per_class", cfg: Config{MaxPerClass: 1}, puts: 3, retain: 1}, // one per shard at most
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newTest(t, tt.cfg)
			var bufs []*Buf
			for range tt.puts {
				bufs = append(bufs, a.Get(4096))
			}
			for _, b := range bufs {
				if tt.change != nil {
					tt.change(b)
				}
				a.Put(b)
			}
			cr := classReport(t, a, 4096)
			if tt.name == "max_per_class" {
				// MaxPerClass is split over the shards: with one shard
				// per slot, what is retained is at most the shard count.
				if cr.Retained < 1 || cr.Retained > int64(len(a.classes[0].shards)) {
					t.Fatalf("retained %d", cr.Retained)
				}
			} else if cr.Retained != tt.retain {
				t.Fatalf("retained %d, want %d (%+v)", cr.Retained, tt.retain, cr)
			}
			if cr.Drops != uint64(tt.puts)-uint64(cr.Retained) || cr.InUse != 0 {
				t.Fatalf("drops %d in use %d, want %d and 0", cr.Drops, cr.InUse, int64(tt.puts)-cr.Retained)
			}
			if r := a.Report(); r.RetainedBytes > r.MaxBytes {
				t.Fatalf("retained %d bytes past max_bytes %d", r.RetainedBytes, r.MaxBytes)
			}
		})
	}
}

func TestDoublePutPanics(t *testing.T) {
	for _, n := range []int{100, 1 << 20} {
		a := newTest(t, Config{})
		b := a.Get(n)
		a.Put(b)
		mustPanic(t, "already put", func() { a.Put(b) })
	}
	a := newTest(t, Config{})
	a.Put(nil) // allowed, does nothing
}

func TestOversize(t *testing.T) {
	a := newTest(t, Config{Classes: []int{1024}})
	b := a.Get(5000)
	r := a.Report()
	if r.Oversize.Gets != 1 || r.Oversize.InUseBytes != 5000 {
		t.Fatalf("oversize %+v, want 1 get and 5000 bytes in use", r.Oversize)
	}
	a.Put(b)
	if b.B != nil {
		t.Fatal("an oversize buffer was kept after Put")
	}
	r = a.Report()
	if r.Oversize.Puts != 1 || r.Oversize.InUseBytes != 0 || r.Oversize.PeakInUseBytes != 5000 || r.RetainedBytes != 0 {
		t.Fatalf("after Put: %+v, retained %d", r.Oversize, r.RetainedBytes)
	}
}

func TestRetainedAcrossGC(t *testing.T) {
	a := newTest(t, Config{})
	var bufs []*Buf
	for range 10 {
		bufs = append(bufs, a.Get(2048))
	}
	for _, b := range bufs {
		a.Put(b)
	}
	runtime.GC()
	runtime.GC() // sync.Pool would be empty now
	for range 10 {
		a.Get(2048)
	}
	if cr := classReport(t, a, 2048); cr.Hits != 10 {
		t.Fatalf("hits after two GCs: %d, want 10", cr.Hits)
	}
}

func TestGetPutDoesNotAllocate(t *testing.T) {
	a := newTest(t, Config{})
	for _, n := range []int{10, 1500, 65536} {
		a.Put(a.Get(n))
		if allocs := testing.AllocsPerRun(100, func() { a.Put(a.Get(n)) }); allocs != 0 {
			t.Errorf("Get(%d)+Put: %v allocations, want 0", n, allocs)
		}
	}
}

// TestConcurrent has goroutines own buffers, fill them with their mark and
// check nobody else wrote to them before putting them back. Run with -race.
func TestConcurrent(t *testing.T) {
	a := newTest(t, Config{MaxBytes: 1 << 20})
	const workers, rounds = 8, 2000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			mark := byte(w + 1)
			var held []*Buf
			for i := range rounds {
				n := (i*7919 + w*31) % 70000 // some oversize
				b := a.Get(n)
				for j := 0; j < len(b.B); j += 61 {
					b.B[j] = mark
				}
				held = append(held, b)
				if len(held) > 4 || i == rounds-1 {
					for _, h := range held {
						for j := 0; j < len(h.B); j += 61 {
							if h.B[j] != mark {
								t.Errorf("worker %d: byte %d of a held buffer is %d: shared with another user", w, j, h.B[j])
								return
							}
						}
						a.Put(h)
					}
					held = held[:0]
				}
			}
		})
	}
	wg.Wait()
	r := a.Report()
	var gets, puts uint64
	for _, cr := range r.Classes {
		if cr.InUse != 0 || cr.WastedBytes != 0 || cr.Gets != cr.Hits+cr.Misses {
			t.Errorf("class %d after all Puts: %+v", cr.Size, cr)
		}
		gets += cr.Gets
		puts += cr.Puts
	}
	gets += r.Oversize.Gets
	puts += r.Oversize.Puts
	if gets != workers*rounds || puts != gets {
		t.Errorf("gets %d puts %d, want %d each", gets, puts, workers*rounds)
	}
	if r.RetainedBytes > r.MaxBytes {
		t.Errorf("retained %d past max_bytes %d", r.RetainedBytes, r.MaxBytes)
	}
}

// FuzzGetPut runs a sequence of Gets and Puts of fuzzed sizes and checks the
// buffers and the report against a model.
func FuzzGetPut(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 255, 128})
	f.Add([]byte{200, 201, 202, 10, 11, 12, 13})
	f.Fuzz(func(t *testing.T, ops []byte) {
		a := newTest(t, Config{Classes: []int{16, 64, 100, 1000}, MaxBytes: 3000})
		var held []*Buf
		live := map[*byte]bool{} // first byte of each held buffer's array
		for i, op := range ops {
			if op >= 200 && len(held) > 0 { // put back one held buffer
				k := int(op-200) % len(held)
				b := held[k]
				held = append(held[:k], held[k+1:]...)
				delete(live, &b.B[:1][0])
				a.Put(b)
				continue
			}
			n := int(op) * 5 % 1100 // 0..1099, some oversize
			b := a.Get(n)
			if len(b.B) != n {
				t.Fatalf("op %d: Get(%d) len %d", i, n, len(b.B))
			}
			if ci := a.classFor(n); ci >= 0 && cap(b.B) != a.classes[ci].size {
				t.Fatalf("op %d: Get(%d) cap %d, want class %d", i, n, cap(b.B), a.classes[ci].size)
			}
			if cap(b.B) > 0 {
				p := &b.B[:1][0]
				if live[p] {
					t.Fatalf("op %d: Get(%d) returned a buffer already held", i, n)
				}
				live[p] = true
			}
			held = append(held, b)
		}
		r := a.Report()
		var inUse int64
		for _, cr := range r.Classes {
			if cr.Gets != cr.Hits+cr.Misses || cr.Puts < cr.Drops || cr.WastedBytes < 0 {
				t.Fatalf("inconsistent class %+v", cr)
			}
			inUse += cr.InUse
		}
		if inUse+int64(r.Oversize.Gets-r.Oversize.Puts) != int64(len(held)) {
			t.Fatalf("in use %d + oversize, held %d", inUse, len(held))
		}
		if r.RetainedBytes > r.MaxBytes {
			t.Fatalf("retained %d past max_bytes %d", r.RetainedBytes, r.MaxBytes)
		}
	})
}
