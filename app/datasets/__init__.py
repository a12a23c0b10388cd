"""Datasets: labelled examples that prompt-optimization jobs read (uploaded, or shipped built in)."""
