"""Training, one concern per module: ``trainer`` (the loop), ``state`` (its checkpoint save and
restore), ``batches`` (batch size checks, epoch order, dropout seeds), ``metrics`` (heads, the
Meter, the Evaluator), ``progress`` (what a run prints), ``callbacks`` (early stopping, the
step and epoch callbacks), ``lr_range`` (the learning-rate range test) and ``errors``.
``netc.runtime.train`` re-exports their public names.
"""
