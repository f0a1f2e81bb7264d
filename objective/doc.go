// Package objective is what one trial of floodtune's built-in trainer does:
// load a dataset (MNIST, any dataset in MNIST's IDX format such as
// Fashion-MNIST or EMNIST, the flooding paper's synthetic sets, a CSV file)
// with a seeded split and label noise, build the model (an MLP, or with
// Config.Conv a convolutional network on the dataset's images) as a
// Gorgonia graph whose loss is flooded through package flood, and train it
// with SGD, momentum or Adam, reporting each epoch through a callback.
//
//	data, err := objective.LoadDataset(ctx, objective.DatasetSpec{Name: "mnist", LabelNoise: 0.2, Seed: 1})
//	res, err := objective.Train(ctx, data, objective.Config{
//		Hidden: []int{500, 500}, Optimizer: objective.Momentum, LR: 0.1, BatchSize: 128, Epochs: 20,
//		Flood: flood.Batch, FloodLevel: 0.94, Seed: 7,
//	}, func(e objective.EpochReport) error { return nil })
//
// A convolutional network is Config.Conv's layers (convolution, ReLU, max
// pooling), then dense layers of the widths Config.Hidden:
//
//	Conv: objective.LeNet, Hidden: []int{256}, // or objective.ParseConv("16:5:p2:pool2,32:5:p2:pool2")
//
// Datasets are named "mnist", "gauss2d", "sinusoid2d", "spiral", "csv:PATH",
// and "idx:DIR" (a directory holding the four IDX files, found by MNIST's
// names) or "idx:TRAIN_IMAGES,TRAIN_LABELS,TEST_IMAGES,TEST_LABELS".
//
// A run is reproducible bit for bit from its Config (its seed included) at
// a fixed BLAS thread count. The package knows nothing of studies, storage
// or metrics: a trial reports through the EpochFunc, and package search
// turns the reports into intermediate values and pruning.
//
// Builds with the openblas tag run the matrix products on OpenBLAS through
// gonum's netlib binding; SetBLASThreads and ReserveWorkers change
// process-wide settings and are for the program that owns the process.
package objective
