"""Training data for Keras: streamed blocks of on-disk sets, domain-balanced batches."""

import keras
import numpy as np

__all__ = ["BalancedDomainSequence", "BlockSequence", "StreamSequence", "block_split"]


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


class StreamSequence(keras.utils.PyDataset):
    """Fresh simulated galaxies every epoch, from a `~astromorphnet.simulation.SimulationStream`.

    Epoch 0 serves ``x``, ``z`` (the training rows of the set the
    estimator's preprocessing was fitted on); after each epoch the next set
    is simulated and preprocessed the same way (``estimator._stream_arrays``),
    its first ``len(x)`` rows used, so every epoch has as many batches.
    """

    def __init__(self, estimator, stream, x, z, batch_size, seed):
        super().__init__()
        self.estimator, self.stream, self.batch_size = estimator, stream, batch_size
        self.rng = np.random.default_rng(seed)
        self.n_rows, self.epoch = len(x), 0
        self._use(x, z)

    def _use(self, x, z):
        self.x, self.z = x[:self.n_rows], z[:self.n_rows]
        self.order = self.rng.permutation(len(self.x))

    def __len__(self):
        return -(-self.n_rows // self.batch_size)

    def __getitem__(self, i):
        rows = self.order[i * self.batch_size:(i + 1) * self.batch_size]
        return self.x[rows], self.z[rows]

    def on_epoch_end(self):
        self.epoch += 1
        self._use(*self.estimator._stream_arrays(self.stream, self.epoch))


class BalancedDomainSequence(keras.utils.PyDataset):
    """Batches of half source, half target rows for adversarial training.

    An epoch passes once through the larger domain; the smaller one is
    cycled, reshuffled on each pass, so every batch is balanced whatever the
    ratio of the two set sizes.
    """

    def __init__(self, x, outputs, weights, target, batch_size, seed):
        super().__init__()
        self.x, self.outputs, self.weights = x, outputs, weights
        self.rng = np.random.default_rng(seed)
        self.domains = [np.flatnonzero(~target), np.flatnonzero(target)]
        self.half = max(batch_size // 2, 1)
        self.n_batches = -(-max(len(d) for d in self.domains) // self.half)
        self.on_epoch_end()

    def __len__(self):
        return self.n_batches

    def __getitem__(self, i):
        rows = np.concatenate([order[i * self.half:(i + 1) * self.half]
                               for order in self.orders])
        return (self.x[rows], {k: v[rows] for k, v in self.outputs.items()},
                {k: v[rows] for k, v in self.weights.items()})

    def on_epoch_end(self):
        need = self.n_batches * self.half
        self.orders = [np.concatenate([self.rng.permutation(d)
                                       for _ in range(-(-need // len(d)))])[:need]
                       for d in self.domains]
