"""Training loops: RIPT-VLA (Algorithm 1), supervised stages, evaluation, and the run folder they write."""
