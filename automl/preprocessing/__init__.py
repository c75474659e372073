"""Preprocessing that ships inside the saved model.

``features`` (numpy only) fits per-column statistics on the training split and converts raw
values to model inputs; ``layers`` (Keras) turns those statistics into layers (numeric transforms
and embeddings, lookups), so the saved ``.keras`` file maps raw records to predictions by itself;
``targets`` holds the regression target transforms, inverted by the model's output layer;
``piecewise`` the monotone piecewise-linear maps both use; ``images`` the image input pipeline.
"""
