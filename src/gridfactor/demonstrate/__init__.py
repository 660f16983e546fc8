"""Stage 2, ``gridfactor demonstrate``: record the zone expert's decisions on the training
chronics (what ``gridfactor train`` clones)."""
