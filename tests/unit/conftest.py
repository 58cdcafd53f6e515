"""Unit tests: pure, no processes and no real waits (those are in tests/local).
`securemsg` and `securemsg_lab` are installed in the venv; `unit_support` lives in
tests/support, which pytest.ini puts on the import path. Shared fixtures such as
`no_key_env` are in tests/conftest.py."""
