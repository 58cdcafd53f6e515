"""Unit tests: pure, no processes and no real waits (those are in tests/local).
`securemsg` and `securemsg_lab` are installed in the venv; in-process helpers come from
`tests.support`. Shared fixtures such as `no_key_env` are in tests/conftest.py."""
