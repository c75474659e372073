"""The search: objectives, budgets and data-dependent defaults, the job's prepared data, the starting
portfolio, Keras Tuner driving and the final model (ensemble selection, refit on every row).

``objectives``, ``budget``, ``defaults``, ``portfolio``, ``ensemble`` and ``spec`` are TensorFlow-free
(the API validates requests with them); ``tuners`` (the one place that knows Keras Tuner's internals),
``runner`` and ``data`` import TensorFlow and are only imported inside workers.
"""
