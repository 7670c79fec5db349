package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// binaryNames lists the binaries the tests start.
var binaryNames = []string{"sipd", "edge", "registrar", "router"}

var (
	buildOnce sync.Once
	buildDir  string // where the binaries are, once built or found
	buildErr  error
	tmpRoot   string // removed by TestMain
)

func TestMain(m *testing.M) {
	code := m.Run()
	if tmpRoot != "" {
		os.RemoveAll(tmpRoot)
	}
	os.Exit(code)
}

// binDir returns the directory holding the sipd binaries: SIPD_BIN_DIR when
// set, else a temporary directory they are built into, once per test binary.
func binDir(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if dir := os.Getenv("SIPD_BIN_DIR"); dir != "" {
			buildDir, buildErr = filepath.Abs(dir)
			return
		}
		tmpRoot, buildErr = os.MkdirTemp("", "sipd-e2e-bin-")
		if buildErr != nil {
			return
		}
		buildDir = tmpRoot
		// The test runs in services/e2e; the mains are in services/cmd.
		cmd := exec.Command("go", "build", "-o", buildDir+string(os.PathSeparator), "./cmd/...")
		cmd.Dir = ".."
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("building sipd binaries (go build ./cmd/... in services): %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	for _, name := range binaryNames {
		if _, err := os.Stat(filepath.Join(buildDir, name)); err != nil {
			t.Fatalf("binary %s not found in %s: %v", name, buildDir, err)
		}
	}
	return buildDir
}

// requireE2E skips the calling test under -short: these tests start real
// processes and take seconds to minutes.
func requireE2E(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("e2e: skipped under -short (starts real sipd processes)")
	}
}

// sippPath returns the sipp executable. Without sipp the test skips, or
// fails when CI=true, so CI cannot pass by silently skipping the calls.
func sippPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("sipp")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("sipp not found in PATH (required when CI=true): %v", err)
		}
		t.Skipf("sipp not found in PATH, skipping (install SIPp 3.6+, e.g. the sip-tester package): %v", err)
	}
	return p
}
