// Package optim holds the optimisers (LARS as the official code has it,
// SGD and AdamW) that update parameters on the device, and the
// learning-rate Schedule with its Warmup.
package optim
