"""Celery wiring and thin tasks: load the job, call ``automl``, record what happened.

Nothing here imports TensorFlow at module level: the worker's parent process must stay
TensorFlow-free so that forked pool children can initialise it safely.
"""
