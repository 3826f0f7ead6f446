"""`tdp serve`: an OpenAI-compatible scoring server over one model (limits, cancellation, stops)."""
