//go:build !windows

package pipeline

// DefaultDir is where Open looks for a dataset when no directory is given:
// the Debian dataset packages install there (dataset-fashion-mnist).
const DefaultDir = "/usr/share/datasets"
