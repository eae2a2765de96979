"""A form built from a config section's ``setting`` metadata, validated by the engine's own rules.

The form never re-implements validation: it builds the section with
``from_dict`` and shows the ``ConfigError`` reason beside the field it names.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import MISSING, fields
from typing import Any

from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Checkbox, Label, Select, Static

from ragtune.engine.config.base import Section
from ragtune.engine.core.errors import ConfigError
from ragtune.tui.widgets.text_entry import Input
from ragtune.tui.widgets.tickbox import TickBox


def _kind(tp: Any) -> str:
    origin = typing.get_origin(tp)
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if origin in (list, tuple):
        return f"list[{getattr(args[0], '__name__', 'str')}]" if args else "list[str]"
    if args and origin is not None:
        return _kind(args[0])
    return getattr(tp, "__name__", "str")


def _limits(meta: Any) -> str:
    """The field's allowed range in words, from the same metadata the engine validates with."""
    lo, hi = meta.get("minimum"), meta.get("maximum")
    if lo is not None and hi is not None:
        return f" from {lo:g} to {hi:g}"
    if lo is not None:
        return f" of at least {lo:g}"
    if hi is not None:
        return f" of at most {hi:g}"
    return ""


def expected_form(kind: str, meta: Any = None, example: Any = None) -> str:
    """What a field accepts, with an example of its own (the default), for its parse error.

    One generic example for every number field told users to type a learning rate into
    ``epochs``; the field's own default is an example that is always in range.
    """
    meta = meta or {}
    shown = show_value(example)
    if kind == "int":
        return f"a whole number{_limits(meta)}" + (f", e.g. {shown}" if shown else "")
    if kind == "float":
        return f"a number{_limits(meta)}" + (f", e.g. {shown}" if shown else "")
    if kind == "list[int]":
        return "whole numbers separated by commas, e.g. " + (shown or "384, 256, 128")
    return "text"


def parse_value(text: str, kind: str, expected: str = "") -> Any:
    """Turn an Input's text into the field's type; raises ValueError saying what is expected."""
    text = text.strip()
    if kind == "int":
        try:
            return int(text)
        except ValueError:
            raise ValueError(expected or expected_form(kind)) from None
    if kind == "float":
        try:
            return float(text)
        except ValueError:
            raise ValueError(expected or expected_form(kind)) from None
    if kind.startswith("list["):
        items = [t.strip() for t in text.replace(";", ",").split(",") if t.strip()]
        if kind == "list[int]":
            try:
                return [int(t) for t in items]
            except ValueError:
                raise ValueError(expected or expected_form(kind)) from None
        return items
    return text


def show_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


class FieldRow(Horizontal):
    """A label and its control; the field's error goes on its own line below, so a long
    reason wraps under the field instead of squeezing it, at 80 columns too."""

    DEFAULT_CSS = """
    FieldRow { height: auto; }
    FieldRow > Label { width: 22; color: $text-muted; }
    FieldRow > .control { width: 1fr; max-width: 120; }
    FieldRow > Checkbox { border: none; height: 1; padding: 0; background: transparent; }
    FieldRow > Checkbox.control { width: auto; }
    FieldRow > Select.control { max-width: 40; }
    """


class ConfigForm(Vertical):
    """Edits ``fields`` of one section; posts ``ConfigForm.Valid`` with the rebuilt section."""

    DEFAULT_CSS = """
    ConfigForm { height: auto; }
    ConfigForm > .field-error { height: auto; padding-left: 22; color: $error; display: none; }
    ConfigForm > .field-error.-shown { display: block; }
    ConfigForm > .field-help { height: auto; padding-left: 22; color: $text-muted; display: none; }
    ConfigForm > .field-help.-shown { display: block; }
    """

    class Valid(Message):
        def __init__(self, form: ConfigForm, section: Section) -> None:
            super().__init__()
            self.form = form
            self.section = section

        @property
        def control(self) -> ConfigForm:
            """The form, so a screen's handler can name it: ``@on(ConfigForm.Valid, "#id")``."""
            return self.form

    class Invalid(Message):
        def __init__(self, form: ConfigForm, key: str, reason: str) -> None:
            super().__init__()
            self.form = form
            self.key = key
            self.reason = reason

        @property
        def control(self) -> ConfigForm:
            return self.form

    def __init__(
        self,
        section: Section,
        names: list[str],
        *,
        prefix: str,
        labels: dict[str, str] | None = None,
        placeholders: dict[str, str] | None = None,
        checks: dict[str, Callable[[Any], str | None]] | None = None,
        id: str | None = None,
    ) -> None:
        """``checks`` add a screen's own rule to a field (a folder that must exist): a
        returned reason is shown below the field like the engine's own."""
        super().__init__(id=id)
        self.section = section
        self.names = names
        self.prefix = prefix
        self.labels = labels or {}
        self.placeholders = placeholders or {}
        self.checks = checks or {}
        cls = type(section)
        self._hints = typing.get_type_hints(cls)
        self._fields = {f.name: f for f in fields(cls)}
        self._help = {row[0]: row[2] for row in cls.describe()}
        self.errors: dict[str, str] = {}
        self.external: dict[str, str] = {}
        """Problems the engine found with valid values (checks that need a model, run in a
        worker): shown on the field like the rest, not part of the section's validity."""

    def _control_id(self, name: str) -> str:
        return f"{self.id or 'form'}-{name}"

    def compose(self) -> ComposeResult:
        for name in self.names:
            f = self._fields[name]
            value = getattr(self.section, name)
            kind = _kind(self._hints[name])
            help_text = self._help.get(name, "")
            control: Widget
            if kind == "bool":
                control = TickBox(value=bool(value), id=self._control_id(name), compact=True)
            elif f.metadata.get("choices"):
                options = [(str(c), c) for c in f.metadata["choices"]]
                control = Select(
                    options, value=value, allow_blank=False, compact=True, id=self._control_id(name)
                )
            else:
                control = Input(
                    show_value(value),
                    placeholder=self.placeholders.get(name, ""),
                    compact=True,
                    id=self._control_id(name),
                )
            control.add_class("control")
            control.tooltip = help_text
            label = Label(self.labels.get(name, name.replace("_", " ")))
            label.tooltip = help_text
            with FieldRow(id=f"row-{self._control_id(name)}"):
                yield label
                yield control
            yield Static("", classes="field-error", id=f"err-{self._control_id(name)}")
            # Tooltips need a mouse; the focused field's help shows under it from the keyboard.
            yield Static(help_text, classes="field-help", id=f"help-{self._control_id(name)}")

    def _default(self, name: str) -> Any:
        f = self._fields[name]
        if f.default is not MISSING:
            return f.default
        if f.default_factory is not MISSING:
            return f.default_factory()
        return None

    def raw_values(self) -> tuple[dict[str, Any], dict[str, str]]:
        """Parsed values by field, and parse errors by field."""
        values: dict[str, Any] = {}
        problems: dict[str, str] = {}
        for name in self.names:
            control = self.query_one(f"#{self._control_id(name)}")
            if isinstance(control, (Checkbox, Select)):
                values[name] = control.value
            elif isinstance(control, Input):
                kind = _kind(self._hints[name])
                expected = expected_form(kind, self._fields[name].metadata, self._default(name))
                try:
                    values[name] = parse_value(control.value, kind, expected)
                except ValueError as exc:
                    problems[name] = f"expected {exc}"
        return values, problems

    def validate_now(self) -> Section | None:
        values, problems = self.raw_values()
        self.errors = dict(problems)
        section: Section | None = None
        base = {k: v for k, v in self.section.to_dict().items() if k in self._fields}
        for name, check in self.checks.items():
            if name in values and name not in problems:
                reason = check(values[name])
                if reason:
                    self.errors[name] = reason
        # Each changed field alone first, so every bad field is flagged at once (from_dict
        # stops at the first problem: a bad batch size hid behind a bad learning rate).
        for name, value in values.items():
            if name in self.errors or value == base.get(name):
                continue
            try:
                type(self.section).from_dict({**base, name: value}, prefix=self.prefix)
            except ConfigError as exc:
                self.errors[name] = f"{exc.value!r} not allowed: {exc.allowed}"
        if not self.errors:
            try:
                section = type(self.section).from_dict({**base, **values}, prefix=self.prefix)
            except ConfigError as exc:
                key = exc.key.removeprefix(f"{self.prefix}.")
                self.errors[key if key in self.names else self.names[0]] = (
                    f"{exc.value!r} not allowed: {exc.allowed}"
                )
        self.show_errors()
        if section is not None:
            self.section = section
            self.post_message(self.Valid(self, section))
        else:
            key, reason = next(iter(self.errors.items()))
            self.post_message(self.Invalid(self, f"{self.prefix}.{key}", reason))
        return section

    def show_errors(self) -> None:
        for name in self.names:
            reason = self.errors.get(name) or self.external.get(name, "")
            error = self.query_one(f"#err-{self._control_id(name)}", Static)
            error.update(reason)
            error.set_class(bool(reason), "-shown")

    def set_external(self, problems: dict[str, str]) -> None:
        """Replace the engine's findings on this form's fields (keys without the prefix)."""
        self.external = {k: v for k, v in problems.items() if k in self.names}
        self.show_errors()

    def problem(self) -> tuple[str, str] | None:
        """The first field that stops a run (dotted key, reason), or None."""
        self.validate_now()
        for name, reason in (*self.errors.items(), *self.external.items()):
            return f"{self.prefix}.{name}", reason
        return None

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        self._show_help(event.widget, True)

    def on_descendant_blur(self, event: events.DescendantBlur) -> None:
        self._show_help(event.widget, False)

    def _show_help(self, control: Widget, shown: bool) -> None:
        cid = control.id or ""
        prefix = f"{self.id or 'form'}-"
        if not cid.startswith(prefix) or cid.removeprefix(prefix) not in self.names:
            return
        help_line = self.query_one(f"#help-{cid}", Static)
        help_line.set_class(shown and bool(self._help.get(cid.removeprefix(prefix))), "-shown")

    def set_values(self, section: Section) -> None:
        """Fill the controls from a section (presets, loaded configs)."""
        self.section = section
        for name in self.names:
            control = self.query_one(f"#{self._control_id(name)}")
            value = getattr(section, name)
            with control.prevent(Input.Changed, Checkbox.Changed, Select.Changed):
                if isinstance(control, Checkbox):
                    control.value = bool(value)
                elif isinstance(control, Select):
                    control.value = value
                elif isinstance(control, Input):
                    control.value = show_value(value)
        self.validate_now()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.validate_now()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        event.stop()
        self.validate_now()

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self.validate_now()
