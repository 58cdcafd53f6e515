"""The project's tests, one package: every folder is a subpackage, so a test module has
one name (``tests.unit.test_framing``) however pytest is started, and helpers import by
that name: shared ones from ``tests.support``, a folder's own with a relative import."""
