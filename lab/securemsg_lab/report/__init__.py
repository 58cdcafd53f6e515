"""Offline HTML reports: one self-contained file, no network request (a Content-Security-
Policy forbids them), opened from file://. Shared by the matrix, the benchmark and the
grader; a layer between the apps and core."""
