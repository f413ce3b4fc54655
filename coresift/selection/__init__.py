"""Selection: which samples a run picks, and why the others were not picked.

`picks.choose` filters the candidates and runs the strategies; `scores` turns strategies into
objectives; `greedy` is the exact greedy search they share; `junk` is the low-information
guard.
"""

from coresift.selection.greedy import Selection, greedy_select, k_center_greedy, k_center_reference
from coresift.selection.picks import Picks, choose, embedding_matrix

__all__ = [
    "Picks",
    "Selection",
    "choose",
    "embedding_matrix",
    "greedy_select",
    "k_center_greedy",
    "k_center_reference",
]
