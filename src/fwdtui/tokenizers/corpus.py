"""A small text of our own to train tokenizers on, and a seeded ~1 MB text built from it."""

from __future__ import annotations

import random

SAMPLE_TEXT = """\
How a language model reads text

A language model never sees letters. Before the first layer runs, the text you type is cut into
tokens, and every token is replaced by a number. The model works with those numbers from start
to finish: it looks up one vector per token, passes the vectors through its blocks, and at the
end it scores every token in its vocabulary as the possible next one. Whatever the model cannot
express as a token, it cannot read or write.

The simplest choice would be one token per character. That keeps the vocabulary small, but a
sentence becomes long, and attention costs grow with the square of the length. The opposite
choice, one token per word, makes sequences short but leaves the model helpless in front of a
word it has never met: a typo, a new product name, a word in another language. Byte pair
encoding sits between the two. It starts from the 256 possible bytes, so any text at all can be
written down, and then it learns which neighbouring pieces appear together so often that they
deserve a token of their own.

Training is a loop. Count every pair of adjacent tokens in the training text. Take the pair that
occurs most often, give it a new id, and replace each of its occurrences by that id. Then count
again and repeat, until the vocabulary has the size you asked for. The first merges are almost
always a space followed by a common letter, or two letters that often meet, like "t" and "h".
Later merges build whole words, then pieces of longer words, and finally rare words that only
just made the cut.

The order of the merges matters. When we encode a new text, we apply the merges in the order in
which they were learned: first the earliest rule everywhere it applies, then the next one. Two
tokenizers with the same vocabulary but a different order would cut the same text differently.

Before counting, the text is split into chunks with a regular expression. Words, numbers,
punctuation and runs of spaces land in separate chunks, and merges never cross a chunk border.
Without that rule the tokenizer would waste ids on pieces like "dog." and "dog!" and "dog?",
three tokens for one idea. GPT-2 keeps a leading space with the word that follows it, which is
why " the" and "the" are different tokens. GPT-4 also splits long numbers into groups of at most
three digits, so 1234567 becomes 123, 456 and 7 before any merge is applied.

Numbers are a known weak spot. The year 1999 may be a single token while 2031 is two, and the
price 19.99 is cut into pieces that have nothing to do with its value. A model that adds 4821 and
377 has to learn how those pieces line up, digit group by digit group. Some tokenizers split every
number into single digits for exactly this reason.

Text in other languages pays a tax. English dominates most training sets, so English words get
short encodings while other scripts are cut into many small pieces, sometimes one token per
byte. The same sentence can cost three times as many tokens in Greek or Hindi as in English,
which means less room in the context window and a higher bill per request.

Here are a few sentences the tokenizer must handle as well as English:
Le modèle lit des jetons, pas des lettres, et chaque jeton devient un vecteur.
Das Modell sieht keine Buchstaben, sondern nur Zahlen aus einem festen Wörterbuch.
El modelo aprende qué pares de bytes aparecen juntos con más frecuencia.
Модель читает текст по частям, которые называются токенами.
言語モデルは文字ではなくトークンを読みます。
Το μοντέλο μετατρέπει κάθε λέξη σε αριθμούς πριν από το πρώτο επίπεδο.
भाषा मॉडल पाठ को टोकन में बदलकर पढ़ता है।
Emoji are bytes too: a thumbs up 👍 takes four bytes, and a family 👨‍👩‍👧 takes eighteen.

Code is text with its own habits. Indentation produces long runs of spaces, names are glued from
pieces with underscores or capital letters, and the same keywords come back on every line. A
tokenizer trained on code learns tokens for four spaces, for "def" and "return", and for common
names such as "self" and "self.".

def count_pairs(ids: list[int]) -> dict[tuple[int, int], int]:
    counts = {}
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def merge(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out

for step in range(vocab_size - 256):
    stats = count_pairs(ids)
    best = max(stats, key=stats.get)
    ids = merge(ids, best, 256 + step)

A few numbers to close. GPT-2 has 50,257 tokens: 256 bytes, 50,000 merges and one special token
that marks the end of a document. GPT-4's tokenizer has about 100,000 tokens, and newer models go
to 200,000 or more. A larger vocabulary makes sequences shorter, roughly 4 characters per token
for English, but every extra token adds a row to the embedding matrix: at 4,096 dimensions, 50,000
more tokens cost 204,800,000 more parameters. On 12 March 2024 a typical prompt of 1,500 words
used about 2,000 tokens; at $0.01 per 1,000 tokens that is 2 cents.

Special tokens are the last piece. Strings such as <|endoftext|> or <|im_start|> get ids of their
own that ordinary text can never produce. A chat template wraps each message in them, so the
model knows where the user stops and the assistant begins. When a user types the same string in a
prompt, a careful tokenizer encodes it as plain characters, so nobody can forge the end of a turn.
"""

# pieces to make up words that are not in the sample: names, places, invented terms
_ONSETS = ["b", "br", "c", "ch", "d", "dr", "f", "g", "gr", "h", "j", "k", "l", "m", "n", "p",
           "pl", "qu", "r", "s", "sh", "sk", "st", "t", "th", "tr", "v", "w", "z", ""]
_VOWELS = ["a", "e", "i", "o", "u"] * 3 + ["ai", "ea", "ou", "io", "y", "ä", "é", "ó"]
_CODAS = ["", "", "n", "r", "s", "l", "m", "nd", "rt", "st", "x", "ck", "ng"]
_SUFFIXES = ["", "", "", "s", "ed", "ing", "er", "ly", "ness", "tion", "able", "ist", "ism"]
_FILLERS = ["the", "a", "of", "and", "to", "in", "is", "that", "it", "for", "on", "with", "as",
            "was", "by", "from", "at", "which", "this", "be"]


def sample_text() -> str:
    """The built-in text used when the user gives none (a few KB, several scripts, some code)."""
    return SAMPLE_TEXT


def _made_up_word(rng: random.Random) -> str:
    """A pronounceable word that is (almost surely) not English: 1-4 syllables and a suffix."""
    n_syllables = rng.choice([1, 1, 2, 2, 2, 3, 3, 4])
    word = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)
                   for _ in range(n_syllables))
    return word + rng.choice(_SUFFIXES)


def _number(rng: random.Random) -> str:
    """A number as prose writes them: integers, thousands, decimals, years, percentages."""
    kind = rng.randrange(5)
    if kind == 0:
        return str(rng.randrange(1, 1000))
    if kind == 1:
        return f"{rng.randrange(1000, 10_000_000):,}"
    if kind == 2:
        return f"{rng.uniform(0, 100):.{rng.randrange(1, 4)}f}"
    if kind == 3:
        return str(rng.randrange(1900, 2100))
    return f"{rng.randrange(0, 101)}%"


def _varied_paragraph(paragraph: str, lexicon: list[str], rng: random.Random) -> str:
    """The paragraph with some words swapped for others, re-cased, or given new numbers."""
    words = paragraph.split(" ")
    for k, word in enumerate(words):
        roll = rng.random()
        if roll < 0.08:
            words[k] = rng.choice(lexicon)  # a made-up or sample word, Zipf-ish by repetition
        elif roll < 0.10:
            words[k] = word.capitalize()
        elif roll < 0.11:
            words[k] = word.upper()
        elif roll < 0.13 and any(ch.isdigit() for ch in word):
            words[k] = _number(rng)
    return " ".join(words)


def _made_up_sentence(lexicon: list[str], rng: random.Random) -> str:
    """A sentence of filler words and lexicon words, with the odd number or code name."""
    parts = []
    for _ in range(rng.randrange(6, 22)):
        roll = rng.random()
        if roll < 0.45:
            parts.append(rng.choice(_FILLERS))
        elif roll < 0.92:
            parts.append(rng.choice(lexicon))
        elif roll < 0.97:
            parts.append(_number(rng))
        else:
            parts.append("_".join(rng.choice(lexicon) for _ in range(2)) + "()")
    sentence = " ".join(parts)
    return sentence[:1].upper() + sentence[1:] + rng.choice([".", ".", ".", "?", "!", ";", ":"])


def benchmark_text(n_bytes: int = 1_000_000, seed: int = 0) -> str:
    """About n_bytes of UTF-8 text, the same for the same seed: the sample's paragraphs shuffled
    and varied, mixed with made-up sentences over a vocabulary of ~20,000 invented words.

    Invented words are drawn with Zipf-like weights (a few often, most rarely), so the unique
    chunk table grows as it does on real prose instead of repeating a few KB.
    """
    rng = random.Random(seed)
    paragraphs = [p for p in SAMPLE_TEXT.split("\n\n") if p.strip()]
    sample_words = [w for w in SAMPLE_TEXT.split() if w.isalpha()]
    invented = [_made_up_word(rng) for _ in range(20_000)]
    # Zipf-ish: word k is repeated about 2000 / (k + 1) times, so early words dominate
    lexicon = sample_words + [w for k, w in enumerate(invented)
                              for _ in range(max(1, 2000 // (k + 1)))]
    out: list[str] = []
    size = 0
    while size < n_bytes:
        if rng.random() < 0.3:
            piece = _varied_paragraph(rng.choice(paragraphs), lexicon, rng)
        else:
            piece = " ".join(_made_up_sentence(lexicon, rng) for _ in range(rng.randrange(2, 7)))
        out.append(piece)
        size += len(piece.encode("utf-8")) + 2
    return "\n\n".join(out)
