"""The language side of GLIP: a BERT encoder and its WordPiece tokenizer.

Follows the official maskrcnn_benchmark/modeling/language_backbone/bert_model.py: HuggingFace
`BertModel(add_pooling_layer=False)`, the last layer only,
captions padded to exactly 256 tokens, `[CLS]`/`[SEP]` kept valid in the attention mask.

Real users bring a local `bert-base-uncased` directory. No weights can be downloaded here, so the
tests and the synthetic world build small BERTs from a `BertConfig` and a tokenizer made offline
from a word list (`build_wordpiece_tokenizer`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import normalizers, pre_tokenizers
from torch import nn
from transformers import BertConfig, BertModel, BertTokenizerFast

MAX_QUERY_LEN = 256  # official MODEL.LANGUAGE_BACKBONE.MAX_QUERY_LEN
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # ids 0..4; [PAD] = 0 as in bert-base
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")


def _how_to_get_bert(path: Path) -> str:
    return (
        f"Download bert-base-uncased on a machine with internet access, e.g. "
        f"`huggingface-cli download bert-base-uncased --local-dir {path}` "
        f"(or `hf download bert-base-uncased --local-dir {path}`), and copy the directory here."
    )


def build_wordpiece_tokenizer(words: Iterable[str], lowercase: bool = True) -> BertTokenizerFast:
    """A BERT-style fast WordPiece tokenizer whose vocabulary is `words`, built with no network.

    Vocabulary: the five special tokens, then every pre-token of `words` (as the tokenizer will
    see it: normalised, split at spaces and punctuation), then every single character `c` and its
    continuation `##c` for each character seen plus printable ASCII. A word outside the
    vocabulary therefore falls back to characters instead of `[UNK]` whenever its characters were
    seen. The normaliser, pre-tokeniser and `[CLS] $A [SEP]` template are those of bert-base-uncased
    (transformers' BertTokenizerFast builds them from `vocab`), so offsets and `char_to_token` work
    and `save_pretrained`/`from_pretrained` round-trip.
    """
    # The same normaliser/pre-tokeniser the tokenizer applies, so vocabulary entries match the
    # strings WordPiece will look up (lower-cased, accents stripped, CJK chars split).
    normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lowercase
    )
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()

    vocab: dict[str, int] = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    pieces: list[str] = []
    chars: set[str] = set()
    for word in words:
        if not isinstance(word, str):
            raise TypeError(
                f"build_wordpiece_tokenizer expects strings, got {word!r} ({type(word).__name__})"
            )
        for piece, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(word)):
            pieces.append(piece)
            chars.update(piece)
    ascii_chars = normalizer.normalize_str("".join(chr(c) for c in range(33, 127)))
    chars.update(ascii_chars)

    for piece in pieces:
        vocab.setdefault(piece, len(vocab))
    for c in sorted(chars):  # pre-tokens never hold whitespace, so neither does `chars`
        vocab.setdefault(c, len(vocab))
        vocab.setdefault("##" + c, len(vocab))
    return BertTokenizerFast(vocab=vocab, do_lower_case=lowercase, model_max_length=512)


def _check_dir(path: Path, needed: tuple[str, ...], what: str, any_of: tuple[str, ...] = ()) -> None:
    """Raise FileNotFoundError naming the directory and the missing files."""
    if not path.is_dir():
        raise FileNotFoundError(f"{what}: directory {path} does not exist. {_how_to_get_bert(path)}")
    missing = [name for name in needed if not (path / name).is_file()]
    if any_of and not any((path / name).is_file() for name in any_of):
        missing.append(" or ".join(any_of))
    if missing:
        raise FileNotFoundError(
            f"{what}: {path} lacks {', '.join(missing)}; expected a bert-base-uncased directory. "
            f"{_how_to_get_bert(path)}"
        )


# Weights a BERT checkpoint may hold that BertModel(add_pooling_layer=False) does not use: the pooler and
# the pre-training heads of bert-base-uncased's BertForPreTraining checkpoint.
_UNUSED_PREFIXES = ("pooler.", "cls.", "bert.pooler.")


def _check_bert_config(path: Path) -> None:
    """config.json must be valid JSON of a BERT: any other model_type (distilbert, roberta, ...) would be
    loaded by BertModel with BERT's defaults and random weights."""
    import json

    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"text encoder {path}: config.json is not valid JSON ({e}); re-download the folder. "
                         f"{_how_to_get_bert(path)}") from None
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type != "bert":
        raise ValueError(f"text encoder {path} is a {model_type!r} model (model_type in config.json), not BERT: "
                         f"GLIP's text encoder is bert-base-uncased. {_how_to_get_bert(path)}")


def _load_bert_complete(path: Path) -> BertModel:
    """BertModel from `path`, refused unless every weight of it is in the folder: transformers would
    initialise a missing one at random and only log it. .bin files are read with torch's weights-only
    unpickler (transformers' default), so a pickle payload is refused, never run."""
    import pickle

    try:
        model, info = BertModel.from_pretrained(str(path), add_pooling_layer=False, local_files_only=True,
                                                output_loading_info=True)
    except pickle.UnpicklingError as e:
        raise ValueError(f"text encoder {path}: pytorch_model.bin holds more than tensors (a pickle payload), "
                         f"refused unread ({str(e).splitlines()[0]}); use a model.safetensors") from None
    except Exception as e:  # truncated safetensors (SafetensorError), size mismatch (RuntimeError), OSError
        raise ValueError(f"text encoder {path}: its weights cannot be loaded ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''}); re-download the folder") from None
    missing = sorted(info["missing_keys"]) + sorted(k for k, *_ in info.get("mismatched_keys", ()))
    unexpected = sorted(k for k in info["unexpected_keys"] if not k.startswith(_UNUSED_PREFIXES))
    if missing or unexpected or info.get("error_msgs"):
        raise ValueError(f"text encoder {path} does not hold a complete BERT: {len(missing)} weights missing or "
                         f"of the wrong shape {missing[:5]}, {len(unexpected)} unexpected {unexpected[:5]}"
                         f"{'; ' + '; '.join(info['error_msgs'][:2]) if info.get('error_msgs') else ''}; "
                         "GLIP would run with random weights there. Use a bert-base-uncased folder")
    return model


def load_tokenizer(path: str | Path) -> BertTokenizerFast:
    """The fast tokenizer of a local bert-base-uncased directory (tokenizer.json or vocab.txt)."""
    path = Path(path)
    _check_dir(path, (), "load_tokenizer", any_of=_TOKENIZER_FILES)
    return BertTokenizerFast.from_pretrained(str(path))


def bert_base_config(vocab_size: int = 30522) -> BertConfig:
    """The bert-base-uncased architecture (768 hidden, 12 layers, 12 heads, 3072 FFN)."""
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        hidden_act="gelu",
        max_position_embeddings=512,
        type_vocab_size=2,
        layer_norm_eps=1e-12,
        pad_token_id=0,
    )


def tokenize(
    tokenizer: BertTokenizerFast, captions: list[str], max_len: int = MAX_QUERY_LEN
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask [B, max_len] for `captions`, padded to exactly `max_len`.

    The official detector truncates at 256 tokens (bert_model.py), which silently drops
    the classes at the end of a long prompt (3.3); here an over-long caption is an error instead,
    and the caller chunks the prompt (glip.prompts.build_prompt_chunks).
    """
    if isinstance(captions, str):
        raise TypeError("tokenize expects a list of captions, not a single string")
    if len(captions) == 0:
        raise ValueError("tokenize got no captions; give at least one")
    encoded = tokenizer(list(captions), add_special_tokens=True, truncation=False, padding=False)
    for i, ids in enumerate(encoded["input_ids"]):
        if len(ids) > max_len:
            raise ValueError(
                f"caption {i} has {len(ids)} tokens (with [CLS]/[SEP]), more than max_len={max_len}: "
                f"{captions[i][:80]!r}...; split the prompt with glip.prompts.build_prompt_chunks"
            )
    # [B, max_len] each; pads with [PAD]=0 and mask 0 on the right (PAD_MAX True).
    padded = tokenizer.pad(
        {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]},
        padding="max_length",
        max_length=max_len,
        return_tensors="pt",
    )
    return padded["input_ids"], padded["attention_mask"]


@dataclass
class TextFeatures:
    """What the language backbone hands to the head (official bert_model.py, BertEncoder.forward).

    input_ids, attention_mask: [B, T]; hidden: [B, T, D] last BERT layer (pads not zeroed);
    embedded: [B, T, D] = hidden * attention_mask (pads zeroed).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    hidden: torch.Tensor
    embedded: torch.Tensor


class LanguageBackbone(nn.Module):
    """BERT without pooler as `.model`; state-dict names `model.embeddings...`, `model.encoder.layer.N...`.

    The official names are `language_backbone.body.model.*` (their state-dict prefix), so a checkpoint
    maps by replacing the prefix `language_backbone.body.` with this module's prefix.
    """

    def __init__(
        self, model: BertModel, max_len: int = MAX_QUERY_LEN, tokenizer: BertTokenizerFast | None = None
    ):
        super().__init__()
        if model.pooler is not None:
            raise ValueError(
                "LanguageBackbone expects BertModel(add_pooling_layer=False), as the official GLIP"
            )
        if max_len > model.config.max_position_embeddings:
            raise ValueError(
                f"max_len={max_len} exceeds the BERT's max_position_embeddings={model.config.max_position_embeddings}"
            )
        self.model = model
        self.max_len = max_len
        self.tokenizer = tokenizer  # plain attribute (not a module); set by from_pretrained
        self.hidden_size: int = model.config.hidden_size

    @classmethod
    def from_config(
        cls, config: BertConfig, max_len: int = MAX_QUERY_LEN, tokenizer: BertTokenizerFast | None = None
    ) -> LanguageBackbone:
        """Randomly initialised BERT of the given shape (tests, synthetic world, checkpoint loading)."""
        return cls(BertModel(config, add_pooling_layer=False), max_len=max_len, tokenizer=tokenizer)

    @classmethod
    def from_pretrained(cls, path: str | Path, max_len: int = MAX_QUERY_LEN) -> LanguageBackbone:
        """Weights and tokenizer from a local bert-base-uncased directory (no network)."""
        path = Path(path)
        _check_dir(path, ("config.json",), "LanguageBackbone.from_pretrained", any_of=_WEIGHT_FILES)
        _check_bert_config(path)
        tokenizer = load_tokenizer(path)
        return cls(_load_bert_complete(path), max_len=max_len, tokenizer=tokenizer)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> TextFeatures:
        """input_ids, attention_mask: [B, T] (T = max_len after glip.language.tokenize)."""
        if input_ids.shape != attention_mask.shape or input_ids.dim() != 2:
            raise ValueError(
                f"input_ids {tuple(input_ids.shape)} and attention_mask {tuple(attention_mask.shape)} must both be [B, T]"
            )
        if input_ids.shape[1] > self.max_len:
            raise ValueError(f"{input_ids.shape[1]} tokens exceed max_len={self.max_len}; chunk the prompt")
        # token_type_ids are left to BERT's default zeros, as the official forward passes none.
        out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        hidden = out.last_hidden_state  # [B, T, D]; N_LAYERS 1 = the last layer only
        embedded = hidden * attention_mask.unsqueeze(-1).to(hidden.dtype)  # [B, T, D], pads zeroed
        return TextFeatures(
            input_ids=input_ids, attention_mask=attention_mask, hidden=hidden, embedded=embedded
        )

    def encode(self, captions: list[str]) -> TextFeatures:
        """Tokenize with `self.tokenizer` and run forward (convenience for users and tests)."""
        if self.tokenizer is None:
            raise ValueError(
                "this LanguageBackbone has no tokenizer; pass one to from_config or use tokenize()"
            )
        device = next(self.model.parameters()).device
        input_ids, attention_mask = tokenize(self.tokenizer, captions, self.max_len)
        return self(input_ids.to(device), attention_mask.to(device))
