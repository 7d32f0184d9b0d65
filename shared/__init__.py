"""The library the functions share: `core` is the platform, every other package is a domain.

The platform (settings, errors, declarations, database, cache, storage, events) imports no
domain. Domains build on the platform and talk to each other through a few named functions,
never through each other's tables; tests/test_structure.py keeps both rules.
"""
