"""The lab's own protocol toolkit, written from PROTOCOL.md apart from the programs it checks:
frames and xor (`protocol`), a raw peer (`rawsock`), a captured stream's frames (`stream`),
pcap files (`pcap`), key recovery and bit flips (`attack`), the tamper relay (`mitm`) and
hand-made clients (`rawclient`). Imports nothing of the lab's apps.
"""
