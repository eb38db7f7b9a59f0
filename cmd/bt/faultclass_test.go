package main

// The fault classes of issue 40, each tried through the command line as a
// user meets it: reads that never end, ranks that fail apart, data that is
// silently misread, run directories that lose what is not the run's.

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// folderFlags pretrains the tiny network on the folder at dir.
func folderFlags(data, dir string, extra ...string) []string {
	return append([]string{"-arch", "tiny", "-data", data, "-data-dir", dir, "-augment", "cifar", "-size", "16",
		"-batch", "8", "-projector", "32-32-32", "-workers", "2"}, extra...)
}

// TestFIFOImage: a named pipe called x.png among the images stops the run
// with an error naming it, instead of blocking the loader for ever.
func TestFIFOImage(t *testing.T) {
	root := t.TempDir()
	writeImages(t, filepath.Join(root, "x"), 16)
	fifo := filepath.Join(root, "x", "x.png")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "run")
	err := runPretrain(folderFlags("folder-unlabeled", root, "-steps", "4", "-out", out))
	if err == nil || !strings.Contains(err.Error(), fifo+": not a regular file") {
		t.Fatalf("got %v, want the run stopped naming %s", err, fifo)
	}
}
