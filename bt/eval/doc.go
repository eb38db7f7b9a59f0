// Package eval measures a backbone's representations: weighted cosine kNN
// (KNN), a linear probe on frozen features (LinearProbe), the paper's
// linear evaluation and semi-supervised fine-tuning (TrainClassifier), all
// on features or loaders from the pipeline package. Evaluate and Extract
// take a pretraining run's model and data settings (bt/train), and
// Monitor checks a run with kNN while it trains.
package eval
