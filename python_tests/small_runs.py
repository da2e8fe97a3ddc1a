"""Overrides that shrink a `ript-fast train` run to one RIPT iteration of one group of 2 rollouts and one held-out
episode: the CLI wiring tests of every family take them (each adds what its preset needs)."""

SMALL_RIPT = [
    "contexts.size=2",
    "contexts.eval_size=1",
    "ript.iterations=1",
    "ript.group_size=2",
    "ript.batch_rollouts=2",
    "ript.contexts_per_round=1",
    "ript.max_rounds=1",
    "ript.dynamic_sampling=false",  # a random or barely trained model may never succeed: keep its all-0 group
    "ript.minibatch_rollouts=2",
    "eval.every=1",
]
