"""Membership inference on natural text, honestly labelled: data, blind baselines, shift checks."""
