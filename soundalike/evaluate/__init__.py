"""Search-quality evaluation: ``soundalike evaluate`` and ``bench/quality.py`` run on these modules.

- ``degrade``: the 24 query degradations (codecs, noise, gain, filters, reverb, tempo, pitch, length);
- ``sets``: the query and duplicate sets, with ground truth in CSV;
- ``peers``: Chromaprint (``fpcalc``) with a bit-error-rate matcher, and a mean-MFCC baseline;
- ``metrics``: top-k, MRR, pair precision/recall/F1, precision@k, leave-one-out kNN;
- ``run``: ``evaluate_corpus`` and ``evaluate_self``, which return one report dict.

Heavy dependencies (scipy, librosa) are imported inside the functions that need them
(the ``evaluate`` extra).
"""
