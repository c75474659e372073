"""Tabular datasets: reading uploads, inferring column types, validating targets, splitting.

Pure pandas / pyarrow: the API process uses this without loading TensorFlow.
"""
