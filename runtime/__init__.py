"""netc's runtime: kernels, executors and the training loop.

The kernel cache is configured here, before any module that compiles with ``cache=True`` is
imported (see :mod:`netc.runtime.cache`)."""

from .cache import configure as _configure_cache

KERNEL_CACHE_DIR = _configure_cache()
