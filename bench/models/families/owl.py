"""transformers' OWLv2 and OWL-ViT: one query per class; OWLv2's boxes live in the image padded to a square."""

from bench.models.hf.families import Family

# The authors' LVIS / COCO evaluation, google-research/scenic @ 4a38d475ee89cb821078c0e2bf2065ee030e1535
# (unchanged in these respects since the code was opened, 08ee9dc, 2022-10-17), used for OWL-ViT and OWLv2:
# - scenic/projects/owl_vit/evaluator.py get_predictions (l. 436-441): queries are every class name in each of
#   label_ops.CLIP_BEST_PROMPT_TEMPLATES, canonicalised (tokenize_queries, l. 203), at most 16 tokens
#   (configs/*.py max_query_length = 16, as transformers' OWL text models);
# - evaluator.py get_predict_fn (l. 255-272): the class head per template, its logits averaged over the
#   templates, score = sigmoid of the mean;
# - evaluator.py get_predictions (l. 388-389) and get_top_k: top_k=300 (box, class) pairs per image over all
#   classes (exclusive_classes=False), no score threshold;
# - preprocessing/label_ops.py (l. 45-53): CLIP_BEST_PROMPT_TEMPLATES, the 7 templates of CLIP's notebook
#   Prompt_Engineering_for_ImageNet.ipynb; the OWL-ViT paper's "seven best prompts", confirmed by its authors
#   for inference in google-research/scenic issue #325 (2022-05-27).
CLIP_BEST_PROMPT_TEMPLATES = ["itap of a {}.", "a bad photo of the {}.", "a origami {}.", "a photo of the large {}.",
                              "a {} in a video game.", "art of the {}.", "a photo of the small {}."]
SCENIC = "google-research/scenic@4a38d475ee89cb821078c0e2bf2065ee030e1535"
PUBLISHED = {
    "detections_per_image": 300, "top_k_over_all_classes": True, "score_threshold": 0.0,
    "prompt_template_set": "CLIP_BEST_PROMPT_TEMPLATES", "prompt_templates": CLIP_BEST_PROMPT_TEMPLATES,
    "prompt_template_count": len(CLIP_BEST_PROMPT_TEMPLATES),
    "query_text": "the task's class entry put in each template, then canonicalised (lower case, [^a-z0-9- ] -> "
                  "space, repeated spaces and dashes collapsed, stripped)",
    "ensembling": "mean over the templates of the class head's logits (one unit-length query embedding per "
                  "template and class); score = sigmoid(mean logit)",
    "source": {"templates": f"{SCENIC} scenic/projects/owl_vit/preprocessing/label_ops.py CLIP_BEST_PROMPT_TEMPLATES",
               "canonicalisation": f"{SCENIC} scenic/projects/owl_vit/preprocessing/label_ops.py "
                                   "_canonicalize_string_tf; evaluator.py tokenize_queries",
               "ensembling": f"{SCENIC} scenic/projects/owl_vit/evaluator.py get_predict_fn",
               "cap": f"{SCENIC} scenic/projects/owl_vit/evaluator.py get_predictions(top_k=300, "
                      "exclusive_classes=False), get_top_k"},
    "not_reproduced": ["the authors' tokenizer cuts a query past 16 tokens with its end-of-text token; "
                       "transformers' keeps it (cut queries are listed in truncated_queries)",
                       "the authors clip each unpadded (cx, cy, w, h) to [0, 1]; the harness clips box corners "
                       "to the image (evaluator.py unpad_box)",
                       "the authors' format_predictions drops detections of zero-based class 0 (`if not label`)"],
}

FAMILIES = (
    Family("owlv2", "queries", "square", trains=False, grounds=False, batches=True, published=PUBLISHED),
    Family("owlvit", "queries", "image", trains=False, grounds=False, batches=True, published=PUBLISHED),
)
