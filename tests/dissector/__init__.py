"""The Wireshark dissector (wireshark/), through tshark."""
