"""What a trained model tells an analyst besides its score, computed when its job finishes: which
columns it relies on (``importance``), whether its probabilities mean what they say
(``calibration``) and what it saw in training, per input column (``profile``)."""
