"""securemsg-grade: a submission graded against the reference implementations."""
