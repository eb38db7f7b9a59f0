package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/bt-org/bt/bt/tune"
)

// TestTune: bt tune stores its choices in the user's cache directory, the
// next run reads them and says so, a damaged or older cache is passed over
// with a line and the run goes on, a tuning file named with -tune that holds
// nothing for this adapter is refused before anything is written, and
// -tune off takes the built-in tiles.
func TestTune(t *testing.T) {
	dir := t.TempDir()
	cache := filepath.Join(dir, "cache")
	// The user's cache directory: $XDG_CACHE_HOME on Linux, %LocalAppData% on Windows.
	env := append(os.Environ(), "BT_TEST_MAIN=1", "XDG_CACHE_HOME="+cache, "LocalAppData="+cache)
	run := func(command string, args ...string) (string, error) {
		cmd := btCommand(command, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("tune", "-arch", "tiny", "-batch", "8", "-size", "16", "-projector", "64-64-64", "-budget", "20s")
	if err != nil {
		t.Fatalf("bt tune: %v\n%s", err, out)
	}
	path := filepath.Join(cache, "bt", "tune.json")
	classes := regexp.MustCompile(`(\d+) of (\d+) classes take a tuned tile`).FindStringSubmatch(out)
	kernels := regexp.MustCompile(`(\d+) of (\d+) kernel classes take a tuned variant`).FindStringSubmatch(out)
	if classes == nil || kernels == nil || kernels[2] == "0" || !strings.Contains(out, "stored in "+path) {
		t.Fatalf("bt tune did not report its classes and %s:\n%s", path, out)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}

	out, err = run("pretrain", args("-steps", "2", "-out", filepath.Join(dir, "tuned"))...)
	if err != nil {
		t.Fatalf("pretrain with the cache: %v\n%s", err, out)
	}
	if want := "tuning: " + classes[2] + " classes of product; kernels: elementwise "; !strings.Contains(out, want) || !strings.Contains(out, " from "+path) {
		t.Errorf("pretrain's header lacks %q:\n%s", want, out)
	}

	out, err = run("pretrain", args("-steps", "2", "-tune", "off", "-out", filepath.Join(dir, "off"))...)
	if err != nil || !strings.Contains(out, "tuning: off") {
		t.Errorf("pretrain -tune off: %v\n%s", err, out)
	}

	if err := os.WriteFile(path, []byte(fmt.Sprintf(`{"format": %d, "entries": [{"key": `, tune.Format)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = run("pretrain", args("-steps", "2", "-out", filepath.Join(dir, "damaged"))...)
	if err != nil {
		t.Fatalf("pretrain beside a damaged cache: %v\n%s", err, out)
	}
	if lines := regexp.MustCompile(`(?m)^tuning: ignored, built-in kernel tiles: .*`+regexp.QuoteMeta(path)+` is damaged.*$`).FindAllString(out, -1); len(lines) != 1 {
		t.Errorf("a damaged cache gave %d warning lines, want 1:\n%s", len(lines), out)
	}

	// A cache of the format before the other families' variants.
	if err := os.WriteFile(path, []byte(`{"format": 1, "entries": []}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = run("pretrain", args("-steps", "2", "-out", filepath.Join(dir, "older"))...)
	if err != nil {
		t.Fatalf("pretrain beside an older cache: %v\n%s", err, out)
	}
	if lines := regexp.MustCompile(`(?m)^tuning: ignored, built-in kernel tiles: .*`+regexp.QuoteMeta(path)+fmt.Sprintf(` has format 1, this build reads %d$`, tune.Format)).FindAllString(out, -1); len(lines) != 1 {
		t.Errorf("an older cache gave %d warning lines, want 1:\n%s", len(lines), out)
	}

	foreign := filepath.Join(dir, "foreign.json")
	if err := os.WriteFile(foreign, []byte(fmt.Sprintf(`{"format": %d, "entries": [{"key": {"adapter": "NVIDIA H100", "vendor": "", "driver": "", "backend": "Vulkan", "version": "v1"}, "gemm": {}}]}`, tune.Format)), 0o644); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(dir, "foreign-run")
	out, err = run("pretrain", args("-steps", "2", "-tune", foreign, "-out", target)...)
	if err == nil || !strings.Contains(out, foreign) || !strings.Contains(out, "no tuning for this adapter") {
		t.Errorf("pretrain -tune with a foreign file: %v\n%s", err, out)
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Errorf("a refused tuning file left %s behind: %v", target, err)
	}

	for _, bad := range [][]string{{"-budget", "0s"}, {"-margin", "-1"}, {"extra"}} {
		if out, err := run("tune", bad...); err == nil {
			t.Errorf("bt tune %v was accepted:\n%s", bad, out)
		}
	}
}
