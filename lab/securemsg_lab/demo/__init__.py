"""The instructor demo (`securemsg-demo`): the seed's Demo Guide, the wire, the attack
on XOR, and secure mode, on the lab core's backends.

The pure parts (frames of a captured stream, pcap parsing, the attack, the bit-flip math)
live in `securemsg_lab.wire` and are unit-tested in `tests/demo/`; `backends.py` (with
`local.py` and `docker.py`) drives the real programs through `securemsg_lab.core`, and
the steps (`steps.py`) never know where they run. The implementations, and the names
the class reads, come from the registry. The relay (`securemsg_lab.wire.mitm`) also runs
alone, in a container of the Python image.
"""
