"""Experiments on top of the stages: ``gridfactor compare`` (factorize -> demonstrate ->
train -> evaluate -> report) and its budget presets."""
