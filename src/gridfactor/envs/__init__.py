"""Environments: synthetic factored MDPs and Grid2Op power grids."""
