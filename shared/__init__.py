"""The library the functions share: one module per concern, no function modules imported."""
