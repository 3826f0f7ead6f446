"""Protocol v2: commitments whose time is proven (RFC 3161) and canaries chosen by public randomness (drand)."""
