"""d4e.adapt: a new actor from seconds of footage (``d4e adapt``).

The renderer prior (``d4e train-prior``) is fine-tuned on a few seconds of the new
actor: a new neural texture (RGB channels unprojected from the actor's own frames, the other
channels from the mean of the prior's textures; ``texture.init``) plus,
per ``configs/adapt.yaml`` ``mode``, nothing else (``texture``), the whole renderer with
batches mixing the prior's own actors (``renderer``), or a small per-actor residual on the
renderer (``residual``). Early stopping on the actor's held-out frames. The result is one
small, self-contained actor file (``kind="actor"``, see :mod:`d4e.adapt.actor`).

Public API (used by ``d4e dub``)::

    adapt_actor(prior, clip_dirs, out, name, config=None, seconds=None, steps=None, minutes=None,
                mix_data=None, audio_model=None, preview=None, sources=None, device=None,
                progress=True) -> AdaptResult
        # footage = preprocessed clip folders; writes the actor file `out` (None: nothing written);
        # AdaptResult.model / .actor_index render the actor; .psnr/.ssim held-out; .size_bytes

    load_actor(path, prior_model) -> (model, actor_index)
        # adds the actor of an actor file to a loaded prior (d4e.render.prior.load_prior);
        # `model(batch)` has the PriorModel contract; CheckpointError for another prior's actor

    adapt_for_dub(model, prior, clip_dir, seconds=4.0, cache_dir=None, progress=True) -> (model, actor_index)
        # dub without --actor: adapt on the first seconds, cache <clip>-<prior sha8>-<s>s.d4e, load it

    read_actor(path) -> (tensors, header); actor_style(tensors) -> audio style dict or None
        # tensors["identity"] (K_id,), audio_style.* (d4e.audio.style.apply_style), header["provenance"]
"""

from d4e.adapt.actor import actor_style, load_actor, read_actor, save_actor
from d4e.adapt.config import AdaptConfig, load_adapt_config
from d4e.adapt.pipeline import AdaptResult, adapt_actor, adapt_for_dub

__all__ = ["adapt_actor", "adapt_for_dub", "load_actor", "read_actor", "save_actor", "actor_style", "AdaptConfig",
           "load_adapt_config", "AdaptResult"]
