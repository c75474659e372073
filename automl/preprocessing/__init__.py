"""Preprocessing that ships inside the saved model.

``features`` (numpy only) fits per-column statistics on the training split and converts raw
values to model inputs; ``layers`` (Keras) turns those statistics into layers, so the saved
``.keras`` file maps raw records to predictions by itself.
"""
