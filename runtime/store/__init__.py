"""What the runtime keeps on disk, one concern per module, from the bottom up: ``errors``
(CheckpointError), ``atomic`` (the atomic-commit protocol every write goes through),
``safetensors`` (the tensors file codec), ``records`` (checkpoints: save, resolve, load) and
``compat`` (whether a checkpoint fits a plan, and plan buffers <-> named tensors).
``netc.runtime.checkpoint`` is their public face.
"""
