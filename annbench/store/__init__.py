"""The results folder: one HDF5 file per run, written atomically."""
