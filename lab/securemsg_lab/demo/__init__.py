"""The instructor demo (`securemsg-demo`): the seed's Demo Guide, the wire, the attack
on XOR, and secure mode, on the lab core's backends.

The pure parts (frames of a captured stream, pcap parsing, the attack, the bit-flip math)
have no I/O and are unit-tested in `tests/demo/`; `lab.py` (with `local.py` and
`docker.py`) drives the real programs through `securemsg_lab.core.backend`, and the steps
(`steps.py`) never know where they run. The cipher, the framing and the escaping rule
are the project's own (`securemsg`), so the demo shows students the real code. This
package imports nothing heavy at import time: `mitm.py` also runs alone, in a container
of the Python image, with only `securemsg` beside it.
"""
