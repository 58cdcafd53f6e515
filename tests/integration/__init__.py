"""Docker tests: the interop matrix (securemsg_lab.matrix) on the Docker backend, and compose.

`python -m tests.integration` is the matrix runner, as `securemsg-matrix`.
"""
