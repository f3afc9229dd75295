"""The pieces of ``bench/bench_finetune.py``, one concept a module.

``bench/`` is not a package: the script runs as ``python bench/bench_finetune.py``,
which puts ``bench/`` first on ``sys.path``, so this package imports as
``finetune_bench`` with no path set-up.

* :mod:`.worker`: the settings a worker and the job run with, and its learner;
* :mod:`.tally`: progressive metrics as differences over a stretch of traffic;
* :mod:`.memory`: the peak resident memory of a stretch of work;
* :mod:`.world`: one seed's stream, catalogue pixels and embedding versions;
* :mod:`.photos`: the catalogue drawn on real photographs (``--photos``);
* :mod:`.job`: ``bertctr finetune`` without its I/O, measured;
* :mod:`.arms`: the stream after the job, champion alone or in a duel;
* :mod:`.report`: the per-seed table, the summary over seeds and its goals.
"""
