"""The user's own settings: profile, district and its collection schedule."""
