"""Both servers under load (SECUREMSG_STRESS=short|long)."""
