"""Training budgets that follow the data: batch size, epochs and patience from the row count.

A 300-row table and a 100,000-row table need different trials: small tables take many passes
over small batches, large ones fewer passes over large batches. On a CPU a Keras epoch also
costs a fixed ~20-30 ms (iterators, the validation pass, callbacks) besides its steps, which
would dominate a tiny table's trial, so an epoch is at least ``MIN_STEPS_PER_EPOCH`` steps: it
passes over a small table's training rows several times. These defaults apply when a job does
not name the value.
"""

from __future__ import annotations

import math

from automl.datasets.targets import TRAIN_FRACTION

MIN_BATCH, MAX_BATCH = 32, 512
MIN_STEPS_PER_EPOCH = 16
# Passes over the training rows a trial may take (before early stopping). Early stopping ends most
# trials long before the cap; the cap binds where a network keeps improving, as on tables it must
# learn code-by-code lookups from. Measured (benchmarks, 2026-12-01): star's first entry was still
# improving at 80 passes (0.855 held-out accuracy) and reached 0.909 allowed 160; on the portfolio's
# selection tables these caps changed no table's best candidate by more than 0.01 either way, for
# 1.25x the trial time (docs/benchmarks.md); on the small tables of the quality suite (under 500
# training rows) twice the cap only cost trials in a 60 s budget (diabetes R^2 0.366 -> 0.337).
MIN_PASSES, MAX_PASSES = 80, 200
FULL_PASSES_UP_TO = 2_000  # training rows


def training_rows(n_rows: int) -> int:
    """About how many of a dataset's ``n_rows`` a job's trials train on (its training split): the defaults
    below are taken from it before the data is split."""
    return round(n_rows * TRAIN_FRACTION)


def default_batch_size(n_train: int) -> int:
    """About 1/16 of the training rows, as a power of two between 32 and 512 (a step costs a few
    milliseconds on a CPU whatever its size up to about 128 rows, so small batches are slow)."""
    size = 2 ** round(math.log2(max(1, n_train) / 16)) if n_train > 0 else MIN_BATCH
    return int(min(MAX_BATCH, max(MIN_BATCH, size)))


def passes_per_epoch(n_train: int) -> int:
    """Passes over the training rows in one epoch: enough for ``MIN_STEPS_PER_EPOCH`` steps at the
    default batch size (1 from about 8,000 rows on)."""
    steps = max(1, math.ceil(n_train / default_batch_size(n_train)))
    return max(1, math.ceil(MIN_STEPS_PER_EPOCH / steps))


def max_passes(n_train: int) -> int:
    """200 passes up to 2,000 rows, then fewer (by the square root), down to 80 from 12,500 rows on."""
    scale = math.sqrt(FULL_PASSES_UP_TO / max(1, n_train))
    return int(min(MAX_PASSES, max(MIN_PASSES, round(MAX_PASSES * scale))))


def default_max_epochs(n_train: int) -> int:
    return max(1, math.ceil(max_passes(n_train) / passes_per_epoch(n_train)))


def default_patience(max_epochs: int) -> int:
    """Early-stopping patience: a sixth of the epochs, between 5 and 20."""
    return int(min(20, max(5, round(max_epochs / 6))))
