#!/usr/bin/python3
"""The smallest engine props can check: copy this file, put your model where logits() is, and
run the commands of README.md's "Check your own engine"."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import props_engine  # noqa: E402  (clients/python/props_engine.py: standard library only)


class Example(props_engine.Engine):
    name, version = "example", "1"
    vocab_size = 989  # MiniGPT's vocabulary: props sends its token ids as they are

    def logits(self, tokens, start):
        """Full recompute: the logits of positions start..len(tokens)-1 of `tokens`, one list
        of vocab_size floats each. Here a toy model (a hash of the prefix); yours runs its
        forward pass. props compares these bytes with what your cached path returns."""
        rows, h = [], 0
        for p, t in enumerate(tokens):
            h = (h * 31 + t + 1) % 1000003  # everything before p, and t
            if p >= start:
                rows.append([((h * 7919 + i * 104729) % 2003) / 256.0 for i in range(self.vocab_size)])
        return rows

    # The base class keeps each sequence's tokens and answers the cached operations (append,
    # decode, truncate, fork, reset) by calling logits() on the whole sequence. An engine with
    # a real KV cache overrides on_forward_cached, on_decode, on_truncate, ... instead.


if __name__ == "__main__":
    Example().run()
