"""Features from raw recordings (ABF, NWB): readers, steps, spikes, one definition each.

Floor: beside ``readers/`` (reads raw files, imports only the shared modules). The stage is
``stages/features.py``; the definitions are documented in docs/features-from-recordings.md.
"""
