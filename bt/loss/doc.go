// Package loss holds the objectives a twin step minimises: the Barlow
// Twins loss (BarlowTwins, with the paper's ablations as Options) on a
// materialised or a fused path, and InfoNCE for the paper's comparison.
// Both record their forward and backward passes on a gpu.Recorder.
package loss
