"""What a fixture records of how results are judged: the rule, the formats' units, the
rounding conventions' centres, and how each result array is laid out in groups.

This room lies below the fixture files (:mod:`uscale_ref.golden`), which write
these numbers into every fixture's metadata; the judging and the diagnosis
(:mod:`uscale_ref.verdict`) lie above both.
"""
