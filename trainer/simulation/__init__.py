"""The simulated active-learning experiments behind `python -m trainer.simulate`.

inputs: the configuration, the labeled CSVs, cached base-encoder embeddings;
learners: one learning curve per (strategy, seed), by fine-tuning or by the fast loop's head;
report: the results CSV, the summary against random, the learning-curve plot.
No Django here.
"""
