"""Applications on top of the engine: the k-NN classifier, saved lookup indexes and lookups, and the
network encoders that turn a labelled dataset into an encoded one."""
