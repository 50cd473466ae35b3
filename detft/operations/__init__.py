"""Operations from datasets to datasets: read-check-write (convert), deterministic splits, tiling, merging, class
maps, and the embedded default data."""
