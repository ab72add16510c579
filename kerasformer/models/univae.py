"""The UniVAE task: sentences to latents and back, trained as a Keras model.

    encode(texts)          → latents (n, num_latent_layers · latent_size), one unit
                              vector per latent block
    decode(latents)        → texts, on the shared decode loop (beam search or sampling)
    sample(n)              → texts from the prior (each chunk uniform on its sphere)
    reconstruct(texts)     = decode(encode(texts))
    interpolate(a, b)      → texts along the great circles from a's latents to b's
    swap(a, b, chunks)     → a with b's latent chunks `chunks`, and b with a's

Training is the decoder's cross-entropy on the second copy (the KL term of a vMF
posterior with fixed κ against the uniform prior is a constant): `model` maps
`[token_ids, segment_ids]` of `batches(...)` to MLM logits, and `fit` compiles it
once with `masked_lm_cross_entropy` and trains it under jit.

bojone trains with the loss on every position of the second copy, padding included
(the model learns to predict [PAD] after [SEP]); here only real tokens are targets,
which changes nothing a decoder reads (it stops at [SEP]).
"""
import keras
import numpy as np

from kerasformer.checks import check_integer
from kerasformer.generation import AutoRegressiveDecoder
from kerasformer.models.task import Task, check_texts, model_source, to_numpy


class UniVAEModel(Task):
    """A `UniVAE` architecture with its tokenizer (see the module docstring).

    Usually made with `UniVAEModel.from_encoder(...)` from a pre-trained RoFormer, or
    loaded from a saved preset with `kerasformer.models.load(directory)`.

    Args:
        transformer: a `kerasformer.architectures.univae.UniVAE` with its MLM head.
        tokenizer: its WordPiece tokenizer (with [CLS] and [SEP]).
        family: None (UniVAE is no published family), or a name to record.
        tokenizer_config: the tokenizer's recipe (see `Task`).
    """

    task = "univae"

    def __init__(self, transformer, tokenizer, family=None, tokenizer_config=None):
        from kerasformer.architectures.univae import UniVAE

        if not isinstance(transformer, UniVAE):
            raise ValueError("a UniVAE task needs a UniVAE architecture "
                             "(UniVAEModel.from_encoder makes one from a RoFormer)")
        reason = transformer.can_decode()
        if reason is not None:
            raise ValueError(f"a UniVAE must decode: {reason}")
        if tokenizer.start_id is None or tokenizer.end_id is None:
            raise ValueError("a UniVAE's tokenizer needs start and end tokens ([CLS], [SEP])")
        super().__init__(transformer, tokenizer, family, tokenizer_config)
        self.decoder = AutoRegressiveDecoder(transformer, end_id=tokenizer.end_id)

    @property
    def half_length(self):
        return self.transformer.half_length

    @property
    def chunks(self):
        """Latent chunks: one per latent block, the first from the shallowest."""
        return self.transformer.num_latent_layers

    # ------------------------------------------------------------ construction

    @classmethod
    def from_encoder(cls, source, num_latent_layers=4, latent_size=16, kappa=32.0,
                     half_length=32, dropout_rate=None, tokenizer=None, tokenizer_config=None,
                     **load_kwargs):
        """A new UniVAE (latent projections freshly initialised) on a RoFormer.

        The embeddings, blocks and MLM head are copied by variable path from `source`,
        which must have them: a RoFormer with the MLM head (`roformer-sim-mini`,
        `roformer-sim`, `roformer`, a `MaskedLanguageModel` of one).

        Args:
            source: a loaded task, a built RoFormer `Transformer` (then pass
                `tokenizer` and `tokenizer_config`), or what `kerasformer.models.load`
                takes.
            num_latent_layers, latent_size, kappa, half_length: the `UniVAE`
                arguments (bojone's: 4, 16, 32, 32).
            dropout_rate: the hidden dropout to train with (None: the source's).
            tokenizer, tokenizer_config: for a bare `Transformer` source.
            **load_kwargs: `kerasformer.models.load` arguments for a source to load.
        """
        from kerasformer.architectures.roformer import RoFormer
        from kerasformer.architectures.univae import UniVAE
        from kerasformer.training.weights import copy_weights

        transformer, tokenizer, tokenizer_config = model_source(
            source, tokenizer, tokenizer_config, load_kwargs)
        if type(transformer) is not RoFormer:
            raise ValueError(f"UniVAE is built on RoFormer, not {transformer.architecture}")
        config = transformer.get_config()
        config.pop("architecture")
        config.update(application="unilm", with_pool=False, with_nsp=False, with_mlm="linear",
                      custom_position_ids=False, num_latent_layers=num_latent_layers,
                      latent_size=latent_size, kappa=kappa, half_length=half_length)
        if dropout_rate is not None:
            config["dropout_rate"] = dropout_rate
        vae = UniVAE.from_config(config)
        vae.build()
        missing = copy_weights(transformer.build(), vae.model)
        latent = {variable.path for name in vae.latent_layer_names()
                  for variable in vae.layers[name].weights}
        if set(missing) - latent:
            raise ValueError(f"{transformer.name or transformer.architecture} lacks weights a "
                             f"UniVAE starts from (an MLM head?): "
                             f"{', '.join(sorted(set(missing) - latent))}")
        return cls(vae, tokenizer, None, tokenizer_config)

    # ----------------------------------------------------------------- training

    def encode_batch(self, texts):
        """The training inputs and targets of `texts`.

        Returns:
            `((token_ids, segment_ids), targets)`: int32 `(n, 2 · half_length)` —
            each text cut to `half_length` tokens, padded, twice; segment 1 on the
            second copy; `targets[i]` the token after position i of the second copy
            (0 where there is none).
        """
        texts = check_texts(texts)
        half = self.half_length
        token_ids = np.zeros((len(texts), 2 * half), np.int32)
        for row, text in enumerate(texts):
            ids = self.tokenizer.encode(text, maxlen=half)[0]
            token_ids[row, :len(ids)] = ids
            token_ids[row, half:half + len(ids)] = ids
        segment_ids = np.zeros_like(token_ids)
        segment_ids[:, half:] = 1
        targets = np.zeros_like(token_ids)
        targets[:, half:-1] = token_ids[:, half + 1:]
        return (token_ids, segment_ids), targets

    def batches(self, texts, batch_size=32, seed=0, epochs=None):
        """Shuffled training batches of `texts` (see `encode_batch`), each pass in a new
        order; `epochs` passes, or forever."""
        texts = check_texts(texts)
        batch_size = check_integer(batch_size, "batch_size")
        if len(texts) < batch_size:
            raise ValueError(f"{len(texts)} texts make no full batch of {batch_size}")

        def stream():  # the checks above run at the call, not at the first batch
            rng = np.random.default_rng(seed)
            epoch = 0
            while epochs is None or epoch < epochs:
                order = rng.permutation(len(texts))
                for start in range(0, len(texts) - batch_size + 1, batch_size):
                    yield self.encode_batch([texts[i] for i in order[start:start + batch_size]])
                epoch += 1

        return stream()

    def fit(self, texts, epochs=1, batch_size=32, optimizer=None, seed=0, callbacks=None,
            verbose="auto", validation_texts=None, steps_per_epoch=None):
        """Trains the UniVAE on `texts` (full batches, shuffled at each pass).

        The model is compiled once, unless it is already (or an `optimizer` is given):
        `masked_lm_cross_entropy` and the token accuracy of the teacher-forced second
        copy, jit-compiled.

        Args:
            texts: list of str, the training sentences.
            epochs: int. Passes over `texts`.
            batch_size: int (bojone: 128).
            optimizer: a Keras optimizer (default Adam 2e-5, bojone's).
            seed: int. The shuffling's seed (the vMF samplers draw from their own
                seed generators, made with the model).
            callbacks: Keras callbacks.
            verbose: Keras' `fit` verbosity.
            validation_texts: optional list of str evaluated after every epoch.
            steps_per_epoch: int. Batches per Keras epoch (default: one pass over
                `texts`); passes follow each other across epochs.

        Returns:
            Keras' `History`.
        """
        from kerasformer.training.pretraining import MaskedLMAccuracy, masked_lm_cross_entropy

        batches = self.batches(texts, batch_size, seed)  # checks the texts and batch size
        if not self.model.compiled or optimizer is not None:
            self.model.compile(optimizer=optimizer or keras.optimizers.Adam(2e-5),
                               loss=masked_lm_cross_entropy,
                               metrics=[MaskedLMAccuracy(name="accuracy")])
        validation = None
        if validation_texts:
            validation = tuple(self.encode_batch(validation_texts))
        return self.model.fit(batches, epochs=epochs,
                              steps_per_epoch=steps_per_epoch or len(texts) // batch_size,
                              callbacks=callbacks,
                              verbose=verbose, validation_data=validation, shuffle=False)

    # ---------------------------------------------------------------- latents

    def encode(self, texts, batch_size=64):
        """The latents of `texts`: float32 `(n, num_latent_layers · latent_size)`, each
        chunk of `latent_size` a unit vector (μ of the vMF posterior)."""
        single = isinstance(texts, str)
        texts = check_texts([texts] if single else texts)
        encode = self.compiled("latents", self.transformer.encode_latents)
        latents = []
        for start in range(0, len(texts), batch_size):
            chunk = texts[start:start + batch_size]
            token_ids = self.pad([self.tokenizer.encode(text, maxlen=self.half_length)[0]
                                  for text in chunk])
            latents.append(to_numpy(encode(token_ids))[:len(chunk)])
        latents = np.concatenate(latents)
        return latents[0] if single else latents

    def normalize(self, latents):
        """`latents` with every chunk scaled to a unit vector (how decoding reads them);
        float32 `(n, latent_dim)`."""
        latents = np.asarray(latents, np.float32)
        single = latents.ndim == 1
        latents = np.atleast_2d(latents)
        dim = self.transformer.latent_dim
        if latents.ndim != 2 or latents.shape[1] != dim:
            raise ValueError(f"latents must be (n, {dim}) (num_latent_layers · latent_size), "
                             f"got shape {np.shape(latents)}")
        if not np.all(np.isfinite(latents)):
            raise ValueError("latents hold NaN or infinite values")
        chunks = latents.reshape(len(latents), self.chunks, -1)
        norms = np.linalg.norm(chunks, axis=-1, keepdims=True)
        if np.any(norms == 0):
            raise ValueError("a latent chunk is zero: it has no direction to decode")
        latents = (chunks / norms).reshape(len(latents), dim)
        return latents[0] if single else latents

    def decode(self, latents, beam=1, sample=False, topk=None, topp=None, temperature=1.0,
               seed=None, maxlen=None):
        """Texts of latents (each chunk normalised first, as bojone's decoder).

        Args:
            latents: `(n, latent_dim)` or one `(latent_dim,)` vector.
            beam: int. Beam width (bojone: 1, greedy).
            sample: draw each token instead (with `topk` / `topp` / `temperature`,
                `seed`).
            maxlen: most tokens, [SEP] included (default: what training saw,
                `half_length − 1`).

        Returns:
            list of str (one str for one vector).
        """
        latents = self.normalize(latents)
        single = latents.ndim == 1
        latents = np.atleast_2d(latents)
        count = len(latents)
        # a power-of-two number of rows (repeating the first): few shapes, few compilations
        rows = 1 << (count - 1).bit_length()
        latents = np.concatenate([latents, np.repeat(latents[:1], rows - count, axis=0)])
        maxlen = self.half_length - 1 if maxlen is None else maxlen
        start = self.tokenizer.start_id
        prefixes = [[start, start]] * rows  # [CLS] of each copy
        conditions = {"latents": latents}
        if sample:
            samples = self.decoder.random_sample(
                prefixes, n=1, maxlen=maxlen, topk=topk, topp=topp, temperature=temperature,
                seed=seed, conditions=conditions)
            ids = [rows[0] for rows in samples]
        else:
            ids = self.decoder.beam_search(prefixes, beam=beam, maxlen=maxlen,
                                           temperature=temperature, conditions=conditions)
        texts = [self._text(row) for row in ids[:count]]
        return texts[0] if single else texts

    def _text(self, ids):
        ids = [int(i) for i in ids]
        if ids and ids[-1] == self.tokenizer.end_id:
            ids = ids[:-1]
        return self.tokenizer.decode(ids)

    def prior(self, n, seed=None):
        """`n` latents from the prior: every chunk uniform on its unit sphere."""
        rng = np.random.default_rng(seed)
        return self.normalize(rng.standard_normal((n, self.transformer.latent_dim)))

    def sample(self, n=1, seed=None, **decode_options):
        """`n` texts decoded from prior latents (see `prior`, `decode`)."""
        return self.decode(self.prior(n, seed), **decode_options)

    def reconstruct(self, texts, **decode_options):
        """`decode(encode(texts))`."""
        return self.decode(self.encode(texts), **decode_options)

    def interpolate(self, a, b, steps=5, **decode_options):
        """Texts along the way from `a` to `b` (both included): each latent chunk moves
        along its great circle (spherical interpolation), in `steps` even steps."""
        steps = check_integer(steps, "steps", 2)
        start, end = self.encode([a, b])
        path = np.stack([self._slerp(start, end, t) for t in np.linspace(0, 1, steps)])
        return self.decode(path, **decode_options)

    def _slerp(self, start, end, t):
        start = start.reshape(self.chunks, -1)
        end = end.reshape(self.chunks, -1)
        cosine = np.clip(np.sum(start * end, axis=-1, keepdims=True), -1.0, 1.0)
        angle = np.arccos(cosine)
        sine = np.sin(angle)
        safe = np.where(sine < 1e-6, 1.0, sine)
        mixed = np.where(sine < 1e-6, (1 - t) * start + t * end,
                         (np.sin((1 - t) * angle) * start + np.sin(t * angle) * end) / safe)
        return mixed.reshape(-1)

    def swap(self, a, b, chunks, **decode_options):
        """The multi-scale property: `a` with `b`'s latent chunks `chunks` (indices,
        0 the shallowest latent block), and `b` with `a`'s.

        Returns:
            `(a with b's chunks, b with a's chunks)`: two texts.
        """
        chunks = [chunks] if isinstance(chunks, int) else list(chunks)
        if not chunks or any(isinstance(c, bool) or not isinstance(c, int)
                             or not 0 <= c < self.chunks for c in chunks):
            raise ValueError(f"chunks must be indices in [0, {self.chunks}), got {chunks!r}")
        latents = self.encode([a, b]).reshape(2, self.chunks, -1)
        swapped = latents.copy()
        swapped[0, chunks], swapped[1, chunks] = latents[1, chunks], latents[0, chunks]
        first, second = self.decode(swapped.reshape(2, -1), **decode_options)
        return first, second
