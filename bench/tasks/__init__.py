"""Task YAML -> Task (registry and schema), prompt sets -> prompt chunks, the few-shot sampler.

The YAML files themselves are data, not code: the repository's tasks/ (shipped as bench.task_files)."""
