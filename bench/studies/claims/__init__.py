"""The paper's claims as experiments: several pretraining seeds per fusion variant, the few-shot grid on
each, and one row per claim with an interval that counts both pretraining and fine-tuning variance.

plan (budgets as data) -> run (pretrain, grids, side studies; resumable) -> measure (per-seed values)
-> stats (two-level bootstrap) -> verdict (rule on the interval) -> table (markdown, csv) and figure.
"""
