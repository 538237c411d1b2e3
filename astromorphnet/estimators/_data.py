"""Streaming training data: contiguous blocks of an on-disk set, as a Keras PyDataset."""

import keras
import numpy as np

__all__ = ["BlockSequence", "block_split"]


def block_split(n, block, validation_fraction, seed):
    """Train/validation lists of ``(start, stop)`` row blocks.

    Contiguous blocks read fast from chunked files; whole blocks (not rows)
    are held out for validation, chosen at random.
    """
    blocks = [(start, min(start + block, n)) for start in range(0, n, block)]
    order = np.random.default_rng(seed).permutation(len(blocks))
    n_val = int(round(validation_fraction * len(blocks)))
    if n_val == len(blocks):
        n_val = 0
    val = sorted(blocks[i] for i in order[:n_val])
    train = [blocks[i] for i in order[n_val:]]
    return train, val


class BlockSequence(keras.utils.PyDataset):
    """One batch per block; block order reshuffled every epoch when ``shuffle`` is a seed."""

    def __init__(self, estimator, stamps, z, sample_weight, blocks, shuffle=None):
        super().__init__()
        self.estimator, self.stamps, self.z, self.sw = estimator, stamps, z, sample_weight
        self.blocks = list(blocks)
        self.rng = None if shuffle is None else np.random.default_rng(shuffle)
        self.on_epoch_end()

    def __len__(self):
        return len(self.blocks)

    def __getitem__(self, i):
        start, stop = self.blocks[i]
        x, _ = self.estimator._read(self.stamps, start, stop)
        z = self.z[start:stop].astype(np.float32)
        return (x, z) if self.sw is None else (x, z, self.sw[start:stop])

    def on_epoch_end(self):
        if self.rng is not None:
            self.rng.shuffle(self.blocks)

