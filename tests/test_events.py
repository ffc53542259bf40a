from __future__ import annotations

import dataclasses
import json

import pytest

from core import events


def test_events_are_frozen_and_serialisable() -> None:
    measured = events.PointMeasurements(loss=2.5, flops=1e9, seconds=1.5, hparams={"lr": 1e-3})
    ev = events.PointFinished(model="m", size=200, measured=measured)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.measured = measured  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        measured.loss = 1.0  # type: ignore[misc]
    assert (ev.loss, ev.flops, ev.seconds) == (2.5, 1e9, 1.5)
    d = ev.to_dict()
    assert d["event"] == "PointFinished" and d["reused"] is False
    assert d["measured"]["loss"] == 2.5 and d["measured"]["hparams"] == {"lr": 1e-3}
    json.dumps(d)


def test_ranking_event_nests_entries() -> None:
    entry = events.RankEntry(rank=1, model="m", predicted_target=2.0, low=1.9, high=2.1, score=2.0)
    ev = events.RankingUpdated(entries=(entry,), confidence=0.9)
    assert json.loads(json.dumps(ev.to_dict()))["entries"][0]["model"] == "m"


def test_every_event_is_a_frozen_event_subclass() -> None:
    kinds = [
        v
        for v in vars(events).values()
        if isinstance(v, type) and issubclass(v, events.Event) and v is not events.Event
    ]
    assert len(kinds) >= 12
    for kind in kinds:
        assert kind.__dataclass_params__.frozen, kind.__name__  # type: ignore[attr-defined]
