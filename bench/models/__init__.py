"""The model seam: what the runner needs from a detector (build, prompts, detect, trainable groups, loss)."""
