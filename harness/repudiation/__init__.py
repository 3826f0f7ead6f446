"""Proof-of-learning verification, the proof-of-repudiation forger, and the stress test."""
