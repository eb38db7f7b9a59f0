// Package pipeline reads image datasets, draws the two augmented views that
// Barlow Twins trains on, and delivers them to the trainer as NCHW float32
// batches produced ahead of time by worker goroutines.
//
// Datasets (IDX, CIFAR binary, image folders and a procedural synthetic set)
// all satisfy [Dataset]. Augmentations follow the official Barlow Twins
// recipe; every probability and range lives in [ViewConfig], with presets
// for ImageNet-sized, CIFAR-sized and Fashion-MNIST-sized images. A
// [Loader] turns a dataset and a pair of view configurations into a stream
// of [Batch] values whose contents depend only on the seed and the epoch,
// never on the number of workers.
package pipeline
