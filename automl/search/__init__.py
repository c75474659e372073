"""The search: objectives, the job's prepared data, Keras Tuner driving, and the final fit.

``objectives`` and ``config`` are TensorFlow-free (the API validates requests with them);
``runner`` imports TensorFlow and Keras Tuner and is only imported inside workers.
"""
