"""The platform: settings, the contract's errors, declarations, database, cache, storage, events."""
