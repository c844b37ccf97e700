"""`glip-bench fetch`: official GLIP checkpoints, bert-base-uncased, ODinW, RF100-VL and transformers detectors,
downloaded on a machine with internet into the places `--checkpoint`, `--text-encoder`, `--model hf:DIR` and the
task registry read them from. The catalogue is data (`catalogue.py`); the hub is reached through huggingface_hub
(`hub.py`), so HF_ENDPOINT points it at a mirror or a test server."""
