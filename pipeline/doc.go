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
//
// Bad images stop the loader by default. A folder image that is empty, not
// an image, truncated or corrupt, or larger than FolderOptions.MaxPixels
// (default [DefaultMaxPixels], PIL's limit, judged from the header before
// any pixel is decoded) makes Next return an error naming the file and the
// fault: that of the first bad image in the order the epoch visits the
// dataset, whatever worker met one first. This holds for evaluation loaders
// too, so no broken file is counted among the images evaluated. With
// [LoaderConfig].SkipBad the loader instead reports each bad image once
// (OnSkip, [Loader.Skipped]) and puts the next loadable image in dataset
// order in its place, so batches keep their size and stay a function of the
// seed; it stops with an error once more than MaxBadFraction (default
// [DefaultMaxBadFraction]) of the images tried are bad.
package pipeline
