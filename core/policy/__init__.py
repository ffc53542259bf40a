"""Which point to measure next: the ladder and the budget-aware adaptive policy, and their replay on curve tables. Curve science only: no torch."""
