"""Plumbing every layer uses: safe output (all or nothing, never outside OUT), progress bars, ``--device``, torch's
thread count, the CPU's INT8 instructions and the range of every numeric option."""
