"""The strategies' colours, shared by every chart of a report: distinct, stable, and readable on the
white plot (WCAG non-text contrast, 3:1)."""

from __future__ import annotations

from collections.abc import Sequence

# Twelve distinct colours, each at least 3:1 against the white plot (WCAG non-text contrast); more
# strategies than that get further hues (colors), never a colour another strategy already has.
PALETTE = (
    "#1f77b4", "#d62728", "#2ca02c", "#c25e00", "#9467bd", "#8c564b",
    "#c2379c", "#0f7f8a", "#666666", "#7d7d00", "#1b3f8b", "#a01050",
)  # fmt: skip


def contrast(color: str, background: str = "#ffffff") -> float:
    """WCAG contrast ratio of two #rrggbb colours (1 to 21)."""

    def luminance(value: str) -> float:
        channels = [int(value.lstrip("#")[i : i + 2], 16) / 255 for i in (0, 2, 4)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    high, low = sorted((luminance(color), luminance(background)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def _extra_color(index: int) -> str:
    """The index-th colour past the palette: golden-angle hues, darkened until 3:1 against white."""
    import colorsys

    hue, lightness = ((index * 137.508 + 15) % 360) / 360, 0.45 - 0.07 * (index % 2)
    while True:
        red, green, blue = colorsys.hls_to_rgb(hue, lightness, 0.7)
        color = "#" + "".join(f"{round(c * 255):02x}" for c in (red, green, blue))
        if contrast(color) >= 3.0:
            return color
        lightness -= 0.03


def colors(keys: Sequence[str]) -> dict[str, str]:
    """One stable colour per strategy, shared by every chart; no two strategies share one."""
    found: dict[str, str] = {}
    extra = 0
    for index, key in enumerate(keys):
        if index < len(PALETTE):
            found[key] = PALETTE[index]
            continue
        color = _extra_color(extra)
        while color in found.values():
            extra += 1
            color = _extra_color(extra)
        found[key] = color
        extra += 1
    return found
