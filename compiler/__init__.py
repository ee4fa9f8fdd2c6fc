"""The compiler: pure, numba-free passes from a checked spec to a plan (graph, shapes, plan,
memory), the op and optimizer registries, the pipeline that chains them, and the reports."""
