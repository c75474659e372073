"""Datasets: reading table uploads (CSV, Parquet) and image archives, inferring column types,
validating targets, splitting.

Pure pandas / pyarrow: the API process uses this without loading TensorFlow.
"""
