"""Identification: is the query a copy of a stretch of a catalogue track, and where?

The search by audio gathers evidence here, and one policy decides:

- ``features``: the landmarks and scan prints of a track, computed at one fixed rate (8 kHz) while indexing;
- ``landmarks``: spectrogram-peak pairs hashed, looked up, and voted on at one time difference (and under
  pitch and tempo warps);
- ``postings``: the catalogue's landmark hashes in memory-mapped arrays, looked up per query;
- ``prints``: the scan prints, swept over every track at every offset under heavy noise;
- ``align``: the fingerprint alignment of the query's audio with a candidate's, around its estimated offset;
- ``policy``: every threshold in one ``Policy``; ``judge`` turns each candidate's evidence into a verdict.
"""
