"""Shared pytest set-up: the interop matrix plugin of the lab package.

The matrix tests (tests/integration/test_matrix.py on Docker, tests/local/
test_cross_language.py on local processes) parametrize over the same case catalogue;
the cells a session selects run in parallel once (securemsg_lab/matrix/pytest_plugin.py).
"""

pytest_plugins = ["securemsg_lab.matrix.pytest_plugin"]
