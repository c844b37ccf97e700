"""One run: spec -> resolved run -> (train) -> predictions -> metrics -> record; grids and resume.

spec.py (RunSpec grids, resolve, RunContext), hparams.py, regimes.py, train.py + train_stage.py,
predict.py (evaluate_split, the one evaluation path), collect.py (detections streamed into the predictions file,
Fixed AP's per-class top-k), scoring.py, stages.py (run_one), runner.py (run_grid).
"""
