"""Tools: the ``medgan`` command, the notebook runner, benchmarks and checks. Notebooks never import this layer."""
