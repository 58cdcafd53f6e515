"""The benchmark (`securemsg-bench`, `python -m securemsg_lab.benchmark`): `bench` measures,
`charts` draws docs/bench/'s PNGs from its JSON."""
