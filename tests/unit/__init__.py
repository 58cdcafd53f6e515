"""Pure tests: no processes, no real waits, no network beyond in-process loopback sockets."""
