"""The instructor demo: its units, and whole runs on the local and Docker backends."""
