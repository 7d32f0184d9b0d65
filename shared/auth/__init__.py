"""Sign-in: users and their provider accounts, sessions with rotating refresh tokens, JWTs."""
