"""Self-training (GLIP section 3.3): a teacher grounds the noun phrases of image-caption pairs, a student
trains on human + pseudo boxes, and an experiment in the synthetic world measures whether the student
learns a concept the teacher was never taught.

    phrases.py        noun-phrase extraction (rule-based chunker; spaCy when a local pipeline exists)
    pseudo_label.py   captions + images + teacher -> MDETR grounding json (batched, resumable);
                      merge_grounding (human + pseudo training input), self_training_provenance
    experiment.py     the synthetic-world experiment (teacher vs student zero-shot AP on a novel shape)
"""
