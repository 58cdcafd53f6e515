"""securemsg lab core: one way to run the implementations, shared by every lab tool.

- `registry`: the implementations (implementations/*.toml, $SECUREMSG_IMPLEMENTATIONS,
  entry points): programs, command-line spelling, features;
- `process`: the launcher (start, wait for a line, collect output, signal, stop);
- `backend`, `local`, `docker`: where programs run (local processes, containers);
- `timeouts`: every wait, scaled by SECUREMSG_TEST_TIMEOUT_SCALE;
- `matrix`: the client x server x case interop matrix (`securemsg-matrix`);
- `demo`: the instructor demo (`securemsg-demo`); `bench`: the benchmark (`securemsg-bench`).
"""
