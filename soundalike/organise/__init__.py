"""Organising a library: each feature a function of the catalogue and the vector store, with its own CLI
command and routes (duplicates_report.py: groups of copies, their relations and which to keep; radio.py:
radio and sonic paths; playlist.py: M3U8, XSPF and CSV files)."""
