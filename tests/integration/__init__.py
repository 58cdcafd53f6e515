"""Cross-language interop matrix: one case catalogue, a Docker and a local backend."""
