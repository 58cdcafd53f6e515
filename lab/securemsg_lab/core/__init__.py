"""The lab's core: the only code that starts programs, shared by every app.

- `registry`: the implementations (implementations/*.toml, $SECUREMSG_IMPLEMENTATIONS,
  entry points): programs, command-line spelling, features;
- `process`: the launcher (start, wait for a line, collect output, signal, stop);
- `backend`, `local`, `docker`: where programs run (local processes, containers);
- `timeouts`: every wait, scaled by SECUREMSG_TEST_TIMEOUT_SCALE;
- `paths`: where the checkout is.
"""
