#!/usr/bin/python3
"""A test engine whose tokenizer is not ours: characters. props checks it through its tokenize
op (docs/protocol.md, "An engine with its own tokenizer"): a word is its Latin-1 characters and
a space, and props compares this engine's own rows at word ends.

Its "model" needs no weights: each position's state is a hash chain of every token before it
and its position, and a row's logits are fixed pseudo-random floats picked by that state and
its token. Its cache is real: each sequence keeps the state of every position, and a cached
call goes on from the last one, so a cache bug shows as it would in a transformer's K/V.
Fault switches:
  --bug position    the cached path hashes each token's position within its chunk, not its
                    absolute position (the resume-offset kind of bug)
  --bug truncate    truncate drops the tokens but keeps the states, so the next call goes on
                    from the state of the old end
  --tokenize-bug empty      the word "." tokenizes to no ids (props must refuse it)
  --tokenize-bug malformed  the tokenize reply's ids are not a list of lists
  --tokenize-bug range      the word "." tokenizes to an id outside 0..255
  --positions N             positions a sequence holds (default 16384; props needs 512 words'
                            worth of the longest word's characters)
usage: char_engine.py [--bug position|truncate] [--tokenize-bug empty|malformed|range] [--positions N]"""
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../clients/python"))
import props_engine  # noqa: E402

VOCAB = 256        # a token is a Latin-1 code point (the grammar's Spanish letters are in it)
SPACE = 32
TABLE = 61         # rows of pseudo-random logits the state picks from
MOD = (1 << 61) - 1


def table_row(seed):
    rng = random.Random(seed)  # seeded: the same floats in every process
    return [rng.uniform(-4.0, 4.0) for _ in range(VOCAB)]


class CharEngine(props_engine.Engine):
    name, version = "chars", "1"
    vocab, vocab_size = "tokenize", VOCAB
    positions = max_recompute = 16384

    def __init__(self, bug, tokenize_bug, positions):
        self.bug, self.tokenize_bug = bug, tokenize_bug
        self.positions = self.max_recompute = positions
        self.states_table = [table_row(1000 + k) for k in range(TABLE)]
        self.token_table = [table_row(t) for t in range(VOCAB)]
        self.states = [[] for _ in range(self.sequences)]  # the cache: one state per position

    def tokenize(self, text):
        if self.tokenize_bug == "empty" and text == ".":
            return []
        if self.tokenize_bug == "range" and text == ".":
            return [VOCAB]
        if any(ord(c) >= VOCAB for c in text):
            raise props_engine.ProtocolError("bad_request", "%r has a character outside Latin-1" % text)
        return [ord(c) for c in text] + [SPACE]

    def on_tokenize(self, req):
        if self.tokenize_bug == "malformed":
            return {"ids": {"not": "a list"}}
        return super().on_tokenize(req)

    @staticmethod
    def step(state, token, pos):
        return (state * 1000003 + (token + 1) * 7919 + pos) % MOD

    def row(self, state, token):
        a, b = self.states_table[state % TABLE], self.token_table[token]
        return [x + 0.5 * y for x, y in zip(a, b)]

    # Full recompute: the chain from the start, every row from its state (the one method
    # props_engine.Engine needs; forward_uncached calls it).
    def logits(self, tokens, start):
        state, rows = 1, []
        for p, t in enumerate(tokens):
            state = self.step(state, t, p)
            if p >= start:
                rows.append(self.row(state, t))
        return rows

    # The cached path: goes on from the sequence's last stored state.
    def append(self, seq, tokens, all_rows):
        s, states = self.seq(seq), self.states[self.index(seq)]
        if len(s) + len(tokens) > self.positions:
            raise props_engine.ProtocolError("out_of_capacity", "sequence %d is full" % seq)
        begin, rows = len(s), []
        state = states[-1] if states else 1
        for i, t in enumerate(tokens):
            pos = i if self.bug == "position" else begin + i
            state = self.step(state, t, pos)
            states.append(state)
            if all_rows or i == len(tokens) - 1:
                rows.append(self.row(state, t))
        s.extend(tokens)
        return rows

    def on_truncate(self, req):
        reply = super().on_truncate(req)
        if self.bug != "truncate":
            del self.states[req["seq"]][req["pos"]:]
        return reply

    def on_fork(self, req):
        reply = super().on_fork(req)
        self.states[req["dst"]] = list(self.states[req["src"]][:req["prefix_len"]])
        return reply

    def on_reset(self, req):
        reply = super().on_reset(req)
        for i in ([req["seq"]] if "seq" in req else range(self.sequences)):
            self.states[i] = []
        return reply


def flag(name):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv[1:-1] else None


if __name__ == "__main__":
    CharEngine(flag("--bug"), flag("--tokenize-bug"), int(flag("--positions") or 16384)).run()
