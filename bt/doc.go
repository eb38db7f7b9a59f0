// Package bt implements Barlow Twins: the loss, optimisers, trainer and evaluation.
package bt
