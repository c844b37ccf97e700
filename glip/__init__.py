"""glip: a faithful, readable GLIP (Swin + FPN + DyHead with deep fusion + BERT) in modern PyTorch."""
