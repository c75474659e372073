"""The AutoML domain: datasets, preprocessing, hypermodels, search, registry, serving, storage.

This is the only package that imports TensorFlow, Keras or Keras Tuner, and it does so
lazily (inside the modules that need them), so importing ``automl`` itself stays cheap and
a Celery worker's parent process never initialises TensorFlow before it forks.
"""
