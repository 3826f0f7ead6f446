"""Membership inference on natural text, honestly labelled: data, blind baselines, shift checks,
shadow sets, LiRA, RMIA and reference calibration (estimates, never bounds)."""
