"""Property-based fuzzing of the framing, the session and both servers."""
