"""Curve science: curves, laws, phases, predictions, selectors and their metrics. numpy and scipy only: no torch, no front end."""
