"""securemsg: a teaching lab for client-server messaging, xor and Noise (PROTOCOL.md)."""
