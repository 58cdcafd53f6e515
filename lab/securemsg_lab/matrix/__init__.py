"""The interop matrix: one case catalogue (`cases`), its checks against PROTOCOL.md
(`checks`, `protocol`, `rawsock`), the cell runner (`cells`), the command line (`run`,
console script `securemsg-matrix`) and the pytest plugin (`pytest_plugin`)."""
