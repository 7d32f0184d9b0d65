"""Bins and drop-off points: import, nearby search, geometry, walking directions, Kakao."""
