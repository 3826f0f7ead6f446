"""Membership-inference attacks beyond one model: shadow sets, LiRA, RMIA, reference calibration."""
