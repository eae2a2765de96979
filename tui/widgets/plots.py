"""Loss curves, bar charts and GPU sparklines; each redraws from data it is handed, never from events."""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Label, Sparkline, Static
from textual_plotext import PlotextPlot

from ragtune.tui.run_model import GpuSeries, downsample


class LossPlot(PlotextPlot):
    """One model's train (and eval) loss; data is downsampled to ~2 points per column.

    One model at a time: the embedder's and the reranker's losses are different functions
    on different step counts, and one y axis for both made either curve unreadable.
    """

    DEFAULT_CSS = """
    LossPlot { height: 1fr; min-height: 8; }
    """

    shown: tuple[str, list[int]] = ("loss", [])
    """The title and the train steps last drawn: what the plot says, without reading pixels."""

    def on_mount(self) -> None:
        self.plt.title("loss")

    def show(
        self,
        train: list[tuple[int, float]],
        eval_: list[tuple[int, float]],
        title: str = "loss",
    ) -> None:
        """``train`` and ``eval_`` are (step, loss) points of one model."""
        plt = self.plt
        plt.clear_data()
        plt.title(title)
        buckets = max(10, self.size.width)
        # The key goes in the title: plotext draws a legend inside the plot, over the line.
        key = []
        if train:
            xs, ys = downsample([(float(s), v) for s, v in train], buckets)
            plt.plot(xs, ys, marker="braille")
            key.append("⣿ train")
        if eval_:
            xs = [float(s) for s, _ in eval_]
            ys = [v for _, v in eval_]
            plt.scatter(xs, ys, marker="dot")
            key.append("• eval")
        if not train and not eval_:
            title = "loss: waiting for the first training log"
        steps = [s for s, _ in train] + [s for s, _ in eval_]
        if steps:
            plt.xticks(step_ticks(min(steps), max(steps)))
        plt.title(f"{title}   {'  '.join(key)}" if len(key) > 1 else title)
        self.shown = (title, [s for s, _ in train])
        plt.xlabel("step")
        self.refresh()


def step_ticks(first: int, last: int, most: int = 6) -> list[int]:
    """Whole steps, 1, 2 or 5 x 10^k apart: a step count has no fractions."""
    if last <= first:
        return [first]
    span = last - first
    scale = 1
    while True:
        for factor in (1, 2, 5):
            gap = factor * scale
            if span // gap + 1 <= most:
                start = -(-first // gap) * gap
                return list(range(start, last + 1, gap))
        scale *= 10


class BarChart(PlotextPlot):
    DEFAULT_CSS = """
    BarChart { height: 1fr; min-height: 6; }
    """

    def _ticks(self, labels: Sequence[str]) -> None:
        """Explicit ticks: plotext's own choice for text labels varies between processes."""
        room = max(1, self.size.width // 6)
        step = max(1, -(-len(labels) // room))
        positions = list(range(1, len(labels) + 1))
        self.plt.xticks(positions[::step], list(labels)[::step])

    def show_bars(self, labels: Sequence[str], values: Sequence[float], title: str) -> None:
        plt = self.plt
        plt.clear_data()
        plt.title(title)
        if labels:
            plt.bar(list(range(1, len(labels) + 1)), list(values), marker="hd")
            self._ticks(labels)
        self.refresh()

    def show_grouped(
        self, labels: Sequence[str], groups: dict[str, Sequence[float]], title: str
    ) -> None:
        plt = self.plt
        plt.clear_data()
        plt.title(title)
        if labels and groups:
            positions = list(range(1, len(labels) + 1))
            plt.multiple_bar(positions, [list(v) for v in groups.values()], labels=list(groups))
            self._ticks(labels)
        self.refresh()


class GroupedBars(Static):
    """Horizontal bars, one line per series within each group, legend as a caption line.

    Drawn as text rather than with plotext: the legend never covers a bar, groups stay
    apart at any width, and each series has its own glyph (by default ``░`` for the first,
    ``█`` for the second), so the chart reads under NO_COLOR and in 16 colours as well as
    in a full theme. ``looks`` gives each series its (glyph, style) instead.
    """

    DEFAULT_CSS = """
    GroupedBars { height: auto; min-height: 4; padding: 0 1; }
    """
    GLYPHS = ("░", "█", "▒", "▓")
    STYLES = ("$text-muted", "$primary", "$accent", "$secondary")

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self._data: tuple[str, list[str], dict[str, list[float]]] = ("", [], {})
        self._looks: list[tuple[str, str]] = []

    def show_grouped(
        self,
        labels: Sequence[str],
        groups: dict[str, Sequence[float | None]],
        title: str,
        looks: Sequence[tuple[str, str]] | None = None,
    ) -> None:
        self._data = (title, list(labels), {k: list(v) for k, v in groups.items()})
        self._looks = list(looks or [])
        self.update(self.build(self.content_size.width or 40))

    def on_resize(self) -> None:
        self.update(self.build(self.content_size.width or 40))

    def look(self, i: int) -> tuple[str, str]:
        if i < len(self._looks):
            return self._looks[i]
        return self.GLYPHS[i % 4], self.STYLES[i % 4]

    def build(self, width: int) -> Content:
        """The chart as text for ``width`` cells: title, legend, then each group's bars."""
        title, labels, groups = self._data
        lines: list[Content] = [Content.styled(title, "bold")]
        names = list(groups)
        legend = [
            Content.styled(f"{self.look(i)[0] * 2} {name}", self.look(i)[1])
            for i, name in enumerate(names)
        ]
        lines.append(Content("  ").join(legend))
        values = [v for series in groups.values() for v in series if v is not None]
        if not labels or not values:
            return Content("\n").join(lines)
        top = max(values) or 1.0
        label_w = max(len(label) for label in labels)
        bar_w = max(4, width - label_w - 8)
        for g, label in enumerate(labels):
            for i, name in enumerate(names):
                series = groups[name]
                value = series[g] if g < len(series) else None
                head = label.rjust(label_w) if i == 0 else " " * label_w
                glyph, style = self.look(i)
                if value is None:
                    bar, shown = "", "   –"
                else:
                    bar = glyph * max(1, round(value / top * bar_w))
                    shown = f"{value:.3f}"
                lines.append(
                    Content.assemble(
                        (head + " ", "$text-muted"),
                        (bar, style),
                        f" {shown}",
                    )
                )
        return Content("\n").join(lines)


class GpuPanel(Vertical):
    """Utilisation, memory and temperature sparklines of the first GPU, or 'no GPU'."""

    DEFAULT_CSS = """
    GpuPanel { height: auto; }
    GpuPanel Sparkline { height: 1; margin-bottom: 0; }
    GpuPanel Label { color: $text-muted; }
    """

    def compose(self) -> ComposeResult:
        yield Static("no GPU samples (CPU run or NVML unavailable)", id="gpu-none")
        yield Label("util %", id="gpu-util-label")
        yield Sparkline([], id="gpu-util")
        yield Label("memory %", id="gpu-mem-label")
        yield Sparkline([], id="gpu-mem")
        yield Label("temp °C", id="gpu-temp-label")
        yield Sparkline([], id="gpu-temp")

    def show(self, gpus: dict[int, GpuSeries], cpu: str = "") -> None:
        """``cpu``: what there is to say about a run without GPU samples (CPU, memory, rate)."""
        has = bool(gpus)
        for widget in self.query("Label, Sparkline"):
            widget.display = has
        none = self.query_one("#gpu-none", Static)
        none.display = not has
        if not has:
            none.update(cpu or "no GPU samples (CPU run or NVML unavailable)")
            return
        gpu = gpus[min(gpus)]
        util = list(gpu.utilization)
        mem = list(gpu.memory_pct)
        temp = list(gpu.temperature)
        self.query_one("#gpu-util", Sparkline).data = util
        self.query_one("#gpu-mem", Sparkline).data = mem
        self.query_one("#gpu-temp", Sparkline).data = temp
        more = f" (+{len(gpus) - 1})" if len(gpus) > 1 else ""
        self.query_one("#gpu-util-label", Label).update(
            f"{gpu.name or 'GPU'}{more} util {util[-1]:.0f}%"
        )
        self.query_one("#gpu-mem-label", Label).update(
            f"memory {gpu.memory_used_mb / 1024:.1f}/{gpu.memory_total_mb / 1024:.1f} GB"
        )
        self.query_one("#gpu-temp-label", Label).update(f"temp {temp[-1]:.0f} °C")
