"""The setup screen: choose candidates, data, ladder, training and policy, then start.

The policy row picks ``ladder`` or ``adaptive``; the adaptive budget and
confidence are the two knobs a user tunes (gamma, tau and the schedule stay in
the TOML file and on the CLI), and they are disabled while the policy is ladder.

Every typed value is checked as it is typed (one inline line, green or red),
and the whole form becomes a RunConfig through the same validation the CLI
and TOML files use, so the screen cannot start a run the engine would reject.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import (
    Button,
    Footer,
    Input,
    Label,
    OptionList,
    Select,
    SelectionList,
    Static,
)
from textual.widgets.option_list import Option, OptionDoesNotExist
from textual.widgets.selection_list import Selection
from textual.worker import Worker, WorkerState

from core.config import AdaptiveRunConfig, ConfigError, RunConfig
from lensllm_tui.checks import Verdict, check_dataset, check_model, parse_sizes, tiny_names
from lensllm_tui.recent import CONFIG_NAME, RecentRun

DEFAULT_CONFIG_PATH = "lensllm.toml"


def _fmt_float(v: float) -> str:
    return f"{v:g}"


class SetupScreen(Screen):
    """A keyboard-first form over RunConfig; ctrl+r starts the run."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+r", "start", "Start run", priority=True),
        Binding("ctrl+s", "save", "Save TOML", priority=True),
        Binding("ctrl+o", "load", "Load TOML", priority=True),
        Binding("ctrl+q", "app.quit", "Quit", priority=True),
    ]

    def __init__(
        self,
        config: RunConfig,
        discover: Callable[[], Sequence[str]] | None = None,
        recent: Callable[[RunConfig], Sequence[RecentRun]] | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.discover = discover
        self.recent = recent
        self.hub_models: tuple[str, ...] = ()

    # ----------------------------------------------------------------- layout
    def compose(self) -> ComposeResult:
        yield Static("[b]lensllm-tui[/] · choose candidates, data and budget", id="setup-title")
        with VerticalScroll(id="form"):
            yield Label("Models [dim](space toggles; type an id or path below, enter adds)[/]")
            yield SelectionList[str](id="models", compact=True)
            with Horizontal(classes="row"):
                yield Label("add model", classes="key")
                yield Input(
                    placeholder="tiny:NAME, owner/name or ./path", id="model-input", compact=True
                )
            yield Static("", id="model-check", classes="check")
            with Horizontal(classes="row"):
                yield Label("dataset", classes="key")
                yield Input(id="dataset", compact=True)
                yield Select(
                    [
                        ("text", "text"),
                        ("prompt → completion", "prompt_completion"),
                        ("chat messages", "messages"),
                        ("alpaca", "alpaca"),
                        ("auto", "auto"),
                    ],
                    id="format",
                    allow_blank=False,
                    compact=True,
                )
            yield Static("", id="dataset-check", classes="check")
            with Horizontal(classes="row"):
                yield Label("ladder", classes="key")
                yield Input(id="sizes", compact=True)
                yield Label("target", classes="key2")
                yield Input(id="target", type="integer", compact=True)
            with Horizontal(classes="row"):
                yield Label("learning rate", classes="key")
                yield Input(id="lr", type="number", compact=True)
                yield Label("batch", classes="key2")
                yield Input(id="batch", type="integer", compact=True)
                yield Label("epochs", classes="key2")
                yield Input(id="epochs", type="number", compact=True)
            with Horizontal(classes="row"):
                yield Label("policy", classes="key")
                yield Select(
                    [("ladder", "ladder"), ("adaptive", "adaptive")],
                    id="policy",
                    allow_blank=False,
                    compact=True,
                )
                yield Label("budget", classes="key2")
                yield Input(placeholder="no cap", id="budget", compact=True)
                yield Label("confidence", classes="key2")
                yield Input(id="confidence", type="number", compact=True)
            with Horizontal(classes="row"):
                yield Label("output dir", classes="key")
                yield Input(placeholder="runs/<time> when empty", id="out", compact=True)
            with Horizontal(classes="row"):
                yield Label("config TOML", classes="key")
                yield Input(DEFAULT_CONFIG_PATH, id="config-path", compact=True)
                yield Button("Load", id="load", compact=True)
                yield Button("Save", id="save", compact=True)
            with Horizontal(classes="row"):
                yield Button("Start run", id="start", variant="success", compact=True)
                yield Static("", id="setup-message")
            yield Label(
                "Recent runs [dim](enter reopens one: finished points are not trained again)[/]",
                id="recent-label",
            )
            yield OptionList(id="recent", compact=True)
        yield Footer()

    def on_mount(self) -> None:
        self.fill(self.config)
        self.show_recent()
        self.query_one("#models", SelectionList).focus()
        if self.discover is not None:
            self.find_cached_models()

    @work(thread=True, exclusive=True, exit_on_error=False, group="hub-cache")
    def find_cached_models(self) -> None:
        """Scan the Hugging Face cache off the UI thread (it imports torch, reads disk)."""
        assert self.discover is not None
        found = tuple(self.discover())
        if found:
            self.app.call_from_thread(self._add_cached, found)

    def _add_cached(self, found: tuple[str, ...]) -> None:
        self.hub_models = found
        models = self.query_one("#models", SelectionList)
        for name in found:
            try:
                models.get_option(name)
            except OptionDoesNotExist:
                models.add_option(Selection(f"{name}  [dim]HF cache[/]", name, False, id=name))
        text = self.query_one("#model-input", Input).value
        if text.strip():
            self._show_check("#model-check", check_model(text, frozenset(found)))

    @on(Worker.StateChanged)
    def _discovery_failed(self, message: Worker.StateChanged) -> None:
        if message.worker.group == "hub-cache" and message.state == WorkerState.ERROR:
            self._say(f"(Hugging Face cache not scanned: {message.worker.error})", ok=False)

    def show_recent(self) -> None:
        """List reopenable run directories (hidden when there are none)."""
        runs = list(self.recent(self.config)) if self.recent is not None else []
        listing = self.query_one("#recent", OptionList)
        listing.clear_options()
        for run in runs:
            listing.add_option(Option(f"{run.path}  [dim]{run.status}[/]", id=str(run.path)))
        self.query_one("#recent-label", Label).display = bool(runs)
        listing.display = bool(runs)

    @on(OptionList.OptionSelected, "#recent")
    def _reopen(self, event: OptionList.OptionSelected) -> None:
        path = Path(event.option.id or "")
        try:
            config = RunConfig.load_toml(path / CONFIG_NAME)
        except ConfigError as exc:
            self._say(f"✗ {exc}", ok=False)
            return
        self.fill(replace(config, out_dir=str(path)))
        self._say(f"✓ reopened {path}: ctrl+r continues it", ok=True)

    # ------------------------------------------------------------- form <-> cfg
    def fill(self, config: RunConfig) -> None:
        """Show ``config`` in the form (after mount and after loading a TOML)."""
        self.config = config
        models = self.query_one("#models", SelectionList)
        models.clear_options()
        seen: list[str] = []
        for name in [*tiny_names(), *self.hub_models, *config.models]:
            if name not in seen:
                seen.append(name)
        for name in seen:
            where = (
                "tiny zoo"
                if name.startswith("tiny:")
                else ("HF cache" if name in self.hub_models else "typed")
            )
            models.add_option(
                Selection(f"{name}  [dim]{where}[/]", name, name in config.models, id=name)
            )
        self.query_one("#dataset", Input).value = config.data.source
        self.query_one("#format", Select).value = config.data.format
        self.query_one("#sizes", Input).value = ",".join(str(s) for s in config.sizes)
        self.query_one("#target", Input).value = str(config.target)
        self.query_one("#lr", Input).value = _fmt_float(config.train.learning_rate)
        self.query_one("#batch", Input).value = str(config.train.batch_size)
        self.query_one("#epochs", Input).value = _fmt_float(config.train.epochs)
        self.query_one("#out", Input).value = config.out_dir or ""
        self.query_one("#policy", Select).value = config.policy
        budget = config.adaptive.budget
        self.query_one("#budget", Input).value = "" if budget is None else _fmt_float(budget)
        self.query_one("#confidence", Input).value = _fmt_float(config.adaptive.confidence)
        self._adaptive_fields(config.policy == "adaptive")
        self._show_check("#dataset-check", check_dataset(config.data.source))

    def gather(self) -> RunConfig:
        """The form as a validated RunConfig; ConfigError with one line if not."""
        raw: dict[str, Any] = self.config.to_dict()
        raw["models"] = list(self.query_one("#models", SelectionList).selected)
        if not raw["models"]:
            raise ConfigError("choose at least one model (space toggles)")
        source = self.query_one("#dataset", Input).value.strip()
        verdict = check_dataset(source)
        if not verdict.ok:
            raise ConfigError(verdict.message)
        raw["data"]["source"] = source
        raw["data"]["format"] = self.query_one("#format", Select).value
        try:
            raw["sizes"] = parse_sizes(self.query_one("#sizes", Input).value)
            raw["target"] = int(self.query_one("#target", Input).value)
            raw["train"]["learning_rate"] = float(self.query_one("#lr", Input).value)
            raw["train"]["batch_size"] = int(self.query_one("#batch", Input).value)
            raw["train"]["epochs"] = float(self.query_one("#epochs", Input).value)
        except ValueError as exc:
            msg = str(exc)
            if "invalid literal" in msg or "could not convert" in msg:
                msg = "target, learning rate, batch and epochs must be numbers"
            raise ConfigError(msg) from None
        raw["policy"] = self.query_one("#policy", Select).value
        if raw["policy"] == "adaptive":  # ladder keeps the config's adaptive section as is
            raw["adaptive"] = self._gather_adaptive(raw.get("adaptive", {}))
        out = self.query_one("#out", Input).value.strip()
        raw.pop("out_dir", None)
        if out:
            raw["out_dir"] = out
        return RunConfig.from_dict(raw)

    def _gather_adaptive(self, section: dict[str, Any]) -> dict[str, Any]:
        """The adaptive budget (empty: no cap) and confidence typed in the form."""
        section = dict(section)
        budget = self.query_one("#budget", Input).value.strip()
        section.pop("budget", None)
        try:
            if budget and budget.lower() not in ("none", "no cap"):
                section["budget"] = float(budget)
            section["confidence"] = float(self.query_one("#confidence", Input).value)
        except ValueError:
            raise ConfigError(
                "budget and confidence must be numbers (empty budget: no cap)"
            ) from None
        AdaptiveRunConfig(**section)  # one ConfigError line naming the bad value
        return section

    def _adaptive_fields(self, on: bool) -> None:
        """Budget and confidence only mean something for the adaptive policy."""
        for selector in ("#budget", "#confidence"):
            self.query_one(selector, Input).disabled = not on

    @on(Select.Changed, "#policy")
    def _policy_chosen(self, event: Select.Changed) -> None:
        self._adaptive_fields(event.value == "adaptive")

    # ------------------------------------------------------------- live checks
    def _show_check(self, selector: str, verdict: Verdict) -> None:
        widget = self.query_one(selector, Static)
        widget.set_class(verdict.ok, "ok")
        widget.set_class(not verdict.ok, "error")
        mark = "✓" if verdict.ok else "✗"
        widget.update(f"{mark} {escape(verdict.message)}")

    def _say(self, text: str, ok: bool) -> None:
        widget = self.query_one("#setup-message", Static)
        widget.set_class(ok, "ok")
        widget.set_class(not ok, "error")
        widget.update(escape(text))  # paths and errors are the user's text, not markup

    @on(Input.Changed, "#model-input")
    def _model_typed(self, event: Input.Changed) -> None:
        if not event.value.strip():
            self.query_one("#model-check", Static).update("")
            return
        self._show_check("#model-check", check_model(event.value, frozenset(self.hub_models)))

    @on(Input.Submitted, "#model-input")
    def _model_added(self, event: Input.Submitted) -> None:
        name = event.value.strip()
        verdict = check_model(name, frozenset(self.hub_models))
        self._show_check("#model-check", verdict)
        if not verdict.ok:
            return
        models = self.query_one("#models", SelectionList)
        try:
            models.get_option(name)
        except OptionDoesNotExist:  # a new candidate
            models.add_option(Selection(f"{name}  [dim]typed[/]", name, True, id=name))
        else:
            models.select(name)
        event.input.value = ""
        self._show_check("#model-check", Verdict(True, f"added {name}"))

    @on(Input.Changed, "#dataset")
    def _dataset_typed(self, event: Input.Changed) -> None:
        self._show_check("#dataset-check", check_dataset(event.value))

    # ---------------------------------------------------------------- actions
    @on(Button.Pressed, "#start")
    def action_start(self) -> None:
        try:
            config = self.gather()
        except ConfigError as exc:
            self._say(f"✗ {exc}", ok=False)
            return
        self.config = config
        self._say("", ok=True)
        self.app.start_run(config)  # type: ignore[attr-defined]

    @on(Button.Pressed, "#save")
    def action_save(self) -> None:
        path = Path(self.query_one("#config-path", Input).value.strip() or DEFAULT_CONFIG_PATH)
        try:
            config = self.gather()
            config.save_toml(path)
        except ConfigError as exc:
            self._say(f"✗ not saved: {exc}", ok=False)
            return
        except OSError as exc:
            self._say(f"✗ cannot write {path}: {exc.strerror or exc}", ok=False)
            return
        self.config = config
        self._say(f"✓ saved {path}", ok=True)

    @on(Button.Pressed, "#load")
    def action_load(self) -> None:
        path = Path(self.query_one("#config-path", Input).value.strip() or DEFAULT_CONFIG_PATH)
        try:
            config = RunConfig.load_toml(path)
        except ConfigError as exc:
            self._say(f"✗ {exc}", ok=False)
            return
        self.fill(config)
        self._say(f"✓ loaded {path}", ok=True)
