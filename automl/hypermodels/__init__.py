"""Keras Tuner hypermodels: each declares its search space and builds one model per trial."""
