"""The adapted actor cached for `d4e dub` is keyed by the adaptation config (a changed config adapts afresh)."""

from __future__ import annotations

import dataclasses

import pytest

from d4e.adapt.config import load_adapt_config
from d4e.adapt.pipeline import config_fingerprint
from d4e.errors import InputError


def test_config_fingerprint_is_stable_and_sees_every_setting():
    a, b = load_adapt_config(), load_adapt_config()
    fa = config_fingerprint(a)
    assert fa == config_fingerprint(b) and len(fa) == 8 and int(fa, 16) >= 0
    hf = load_adapt_config(overrides={"loss": {"hf": 1.0}})
    steps = dataclasses.replace(a, train=dataclasses.replace(a.train, steps=40))
    lr = load_adapt_config(overrides={"optim": {"lr_texture": 1e-2}})
    prints = {fa, config_fingerprint(hf), config_fingerprint(steps), config_fingerprint(lr)}
    assert len(prints) == 4


def test_hf_loss_settings_are_checked():
    assert load_adapt_config().loss.hf == 0.0  # measured: it did not sharpen the adapted render (configs/adapt.yaml)
    with pytest.raises(InputError, match="hf_kind"):
        load_adapt_config(overrides={"loss": {"hf_kind": "fourier"}})
    with pytest.raises(InputError, match="loss.hf"):
        load_adapt_config(overrides={"loss": {"hf": -1.0}})
