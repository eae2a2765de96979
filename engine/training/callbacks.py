"""Trainer callbacks that turn trainer logs into events and a cancel request into a clean stop."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from ragtune.engine.core.events import Emitter, TrainLog
from ragtune.engine.core.payloads import StepProgress


def _finite(value: Any) -> float | None:
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


class EventsCallback(TrainerCallback):
    """Forwards every trainer log line as a ``TrainLog`` event and stops when ``cancel`` is set.

    Cancelling sets ``should_training_stop`` (and asks for a save), so the trainer ends its
    step, writes a checkpoint and returns normally: the run can resume from it later.
    """

    def __init__(self, events: Emitter, model: str, cancel: threading.Event | None = None) -> None:
        self.events = events
        self.model = model
        self.cancel = cancel
        self.cancelled = False
        self._started = time.monotonic()

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        self._started = time.monotonic()

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        if self.cancel is not None and self.cancel.is_set():
            self.cancelled = True
            control.should_training_stop = True
            control.should_save = True
        elif state.max_steps:
            self.events.progress(
                state.global_step,
                state.max_steps,
                unit="steps",
                extra=StepProgress(
                    model=self.model, elapsed=round(time.monotonic() - self._started, 1)
                ),
            )

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kw: Any,
    ) -> None:
        if not logs:
            return
        is_eval = any(k.startswith("eval_") for k in logs)
        values = {k: float(v) for k, v in logs.items() if _finite(v) is not None}
        loss = _finite(logs.get("eval_loss" if is_eval else "loss"))
        self.events.emit(
            TrainLog(
                model=self.model,
                split="eval" if is_eval else "train",
                step=state.global_step,
                max_steps=state.max_steps,
                epoch=float(state.epoch or 0.0),
                loss=loss,
                learning_rate=_finite(logs.get("learning_rate")),
                values=values,
            )
        )
