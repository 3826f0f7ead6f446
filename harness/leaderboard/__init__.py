"""Leaderboards: one config, a grid of models x tasks, resumable runs, one page to read."""
