"""Protocol v2: commitments with a proven time (RFC 3161), canaries chosen by public randomness."""
