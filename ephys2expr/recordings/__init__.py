"""Features from raw recordings (ABF, NWB): readers, steps, spikes, one definition each.

Floor: beside ``readers/`` (reads raw files, imports only the shared modules). The stage is
``stages/features.py``; the definitions are documented in docs/features-from-recordings.md.

* :mod:`~ephys2expr.recordings.abf` - ABF 1 and 2 through pyABF.
* :mod:`~ephys2expr.recordings.nwb` - NWB 2 (Allen/DANDI intracellular layout) through h5py.
* :mod:`~ephys2expr.recordings.recording` - sweeps in mV / pA, unit checks.
* :mod:`~ephys2expr.recordings.sweeps` - long-square steps from the stimulus.
* :mod:`~ephys2expr.recordings.spikes` - Allen/ipfx spike detection, a filter that follows
  the sampling rate.
* :mod:`~ephys2expr.recordings.analysis` - per-sweep work, spontaneous activity,
  depolarisation block.
* :mod:`~ephys2expr.recordings.definitions` - one function per feature.
* :mod:`~ephys2expr.recordings.columns` - the QC columns beside the features (predict reads
  them quietly).
* :mod:`~ephys2expr.recordings.run` - the stage's job; :mod:`~ephys2expr.recordings.settings`.
"""
