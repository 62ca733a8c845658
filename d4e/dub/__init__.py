"""d4e.dub: the dubbing pipeline (``d4e dub VIDEO AUDIO -o OUT.mp4``).

Stages, each with a narrow interface (importing this package imports nothing heavy):

* :mod:`d4e.dub.timeline` -- ``plan_timeline(n_video_frames, fps, audio_duration, extend, shorter) -> Timeline``
  (source frame of every output frame; ping-pong / loop / freeze; keep / trim) and
  ``audio_for_timeline``.
* :mod:`d4e.dub.validity` -- ``select_frames(valid, yaw_deg, max_yaw_deg, occluded) -> FrameSelection``,
  ``yaw_degrees(R)``, ``crossfade_weights(active, ramp)``.
* :mod:`d4e.dub.paste` -- ``paste_crop(frame, crop, affine, alpha)`` (inverse crop transform,
  bounding-box-local, bit-identical outside), ``crop_frame``, ``border_alpha``.
* :mod:`d4e.dub.frames` -- ``FrameSource``: full frames by index with bounded memory.
* :mod:`d4e.dub.pipeline` -- ``dub_frames(clip, frames, timeline, selection, generator, post, sink, ...)``,
  the ``Generator`` protocol and ``Generated``; ``plain_composite`` (post-processing off).
* :mod:`d4e.dub.neural` -- ``NeuralGenerator`` (expression edit -> posed mesh -> masks -> neural
  render) and ``predict_mouth`` (audio -> face-model mouth coefficients per output frame).
* :mod:`d4e.dub.run` -- ``dub(video, audio, out, prior=..., ...) -> DubReport``: the whole job.
* :mod:`d4e.dub.checks` -- ``check_dub_output(video, audio, out, recorder, crop_affine, fps) -> OutputCheck``
  (frame count, audio stream, size, fps, pixels outside the generated region) with ``RegionRecorder``.
* The self-dub check (a clip dubbed with its own audio vs the renderer's reconstruction) is an
  evaluation protocol: :mod:`d4e.eval.selfdub` (it scores with ``d4e.eval.metrics``).
"""
