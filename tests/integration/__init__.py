"""Docker tests: the interop matrix (securemsg_lab.matrix) on the Docker backend, and compose.

Run as `.venv/bin/pytest tests/integration`; the same matrix as a command is `securemsg-matrix`.
"""
