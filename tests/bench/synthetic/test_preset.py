"""glip-synth is bench's preset: its tokenizer's words are the synthetic world's, and it resolves by name."""

import re
from dataclasses import replace

import glip
from bench.synthetic.concepts import TOKENIZER_WORDS, vocabulary
from bench.synthetic.preset import NAME, glip_synth
from glip.config import VOCAB_CHARS
from glip.model import builtin_tokenizer


def test_every_word_of_the_world_is_one_token_of_the_preset():
    tok = builtin_tokenizer(glip_synth())
    words = [w for w in vocabulary() if re.fullmatch(r"[a-z]+", w)]
    punctuation = [w for w in vocabulary() if w not in words]
    assert len(words) > 30 and set(words) <= set(TOKENIZER_WORDS)
    assert set(punctuation) <= set(VOCAB_CHARS)
    for word in words:  # [CLS] word [SEP]: no character fallback, no [UNK]
        ids = tok(word)["input_ids"]
        assert len(ids) == 3 and tok.convert_ids_to_tokens(ids[1]) == word, word


def test_token_ids_are_those_the_committed_results_were_trained_with():
    """Reordering TOKENIZER_WORDS would give words other embedding rows and move every synthetic number:
    the ids below are those of the vocabulary results/demo-quick was trained with (249 entries)."""
    vocab = builtin_tokenizer(glip_synth()).get_vocab()
    assert len(vocab) == 249
    assert [vocab[w] for w in ("red", "circle", "star", "hexagon", "left", "the", "five", ".", "##z")] == [
        5, 20, 23, 28, 57, 91, 113, 149, 240]
    firsts = list(dict.fromkeys(TOKENIZER_WORDS))  # after the 5 special tokens, the words in list order
    assert [vocab[w] for w in firsts] == list(range(5, 5 + len(firsts)))


def test_glip_synth_resolves_by_name_through_glip():
    cfg = glip.get_preset(NAME, fusion="late")
    assert cfg == replace(glip_synth(), fusion="late")
    assert cfg.vocab_words == TOKENIZER_WORDS and NAME in glip.PRESETS
