"""Analysing waste: jobs, the four pipeline stages, the dictionary, the model, history."""
