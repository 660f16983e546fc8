"""Power grids: the collection-backed factorization pipeline, physics reference zones, maps.

``gridfactor.factorize`` holds the generic pieces (MI graph -> edges -> zones); this package
runs them on a Grid2Op grid: collect random-topology episodes, estimate the (line x
substation) MI matrix, partition it into zones, compare with the grid's electrical structure.
"""
