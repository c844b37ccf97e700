"""glip-bench: the harness. Tasks x regimes -> records -> tables and curves."""

__version__ = "0.1.0"

from glip.config import GLIPConfig, register_preset


def _glip_synth() -> GLIPConfig:
    """glip-synth, the synthetic world's model (bench/synthetic/preset.py), built on first lookup: the
    synthetic package loads numpy and PIL, which a command that never builds this model should not pay."""
    from bench.synthetic.preset import glip_synth

    return glip_synth()


# registered here, so `--model glip-synth`, glip.get_preset and glip.from_pretrained resolve it by name
# wherever bench is imported
register_preset("glip-synth", _glip_synth)
