"""The benchmark (`securemsg-bench`, bench/README.md): every registered server beside
bench/refserver on work where the server is the bottleneck, interleaved in one run.

- `work`: the scenarios, the figures, the targets and the tables' rows (pure);
- `builds`: this checkout or another revision (--compare), their servers;
- `measure`: the interleaved rounds, the sweep, the results document;
- `report`: the text and Markdown tables; `charts`: the PNGs (from bench.json only);
- `cli`: the command line.
"""
