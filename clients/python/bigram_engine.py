#!/usr/bin/python3
"""A stand-in engine written with props_engine.py: deterministic logits from each row's token,
the token before it and its position, computed without a model. Its cached path is correct by
construction, so props passes it; --bug shifts the position the cached path sees by one (the
cursor-off-by-one kind of bug), so props fails it.
usage: bigram_engine.py VOCAB_SIZE [--bug]"""
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import props_engine  # noqa: E402


class Bigram(props_engine.Engine):
    name, version = "bigram", "1"

    def __init__(self, vocab_size, bug):
        self.vocab_size, self.bug, self.table = vocab_size, bug, {}
        self.cached = False

    def base(self, token):
        if token not in self.table:
            rng = random.Random(token)  # seeded by the token: the same floats in every process
            self.table[token] = [rng.uniform(-4.0, 4.0) for _ in range(self.vocab_size)]
        return self.table[token]

    def logits(self, tokens, start):
        rows = []
        for p in range(start, len(tokens)):
            pos = p + 1 if self.bug and self.cached and p > 0 else p
            a, b = self.base(tokens[p]), self.base(tokens[p - 1] if p else 0)
            shift = pos % self.vocab_size
            rows.append([a[i] + 0.5 * b[(i + shift) % self.vocab_size] for i in range(self.vocab_size)])
        return rows

    def append(self, seq, tokens, all_rows):
        self.cached = True
        try:
            return super().append(seq, tokens, all_rows)
        finally:
            self.cached = False


if __name__ == "__main__":
    Bigram(int(sys.argv[1]), "--bug" in sys.argv[2:]).run()
