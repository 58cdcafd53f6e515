"""securemsg lab: the tools that run, check and measure the securemsg programs, in layers.

- `core`: the registry of implementations, the launcher, the backends (local, docker),
  timeouts, paths: the only code that starts programs;
- `wire`: the lab's own reading of PROTOCOL.md (frames, xor, raw peer, pcap, key
  recovery, tamper relay), apart from the programs it checks;
- apps, each on core and wire only: `matrix` (the interop matrix, `securemsg-matrix`),
  `demo` (the instructor demo, `securemsg-demo`), `tasks` (the handout's checks,
  `securemsg-tasks`), `benchmark` (`securemsg-bench`).
"""
