"""Fuzz target: mutate real messages from tests/data and feed them to the mail pipeline.

Run ``python -m fuzz --cases 100000``. Each case is reproducible from ``--seed`` and its
number (``python -m fuzz --replay SEED:CASE``); a case fails when the parser, classifier,
matcher or new-text detector raises, or when it takes longer than the time budget.
"""
