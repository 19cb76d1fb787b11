"""Reading the day view's SVG back (streams/dayview.py): rows, axis ticks and booking bars by
their data attributes, for the unit, HTTP and browser tests."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

SVG = "{http://www.w3.org/2000/svg}"


def svg_of(page: str) -> ET.Element:
    match = re.search(r"<svg.*?</svg>", page, re.DOTALL)
    assert match, "no inline SVG in the page"
    return ET.fromstring(match.group(0))


def rows(svg: ET.Element) -> dict[str, tuple[float, float]]:
    """table_id -> (top, bottom) of its row."""
    out = {}
    for g in svg.iter(f"{SVG}g"):
        if "table-row" in g.get("class", ""):
            rect = g.find(f"{SVG}rect")
            assert rect is not None
            top = float(rect.get("y", "nan"))
            out[g.get("data-table-id", "")] = (top, top + float(rect.get("height", "nan")))
    return out


def ticks(svg: ET.Element) -> dict[int, float]:
    """minute after 00:00 -> x of its tick."""
    return {int(line.get("data-minute", "-1")): float(line.get("x1", "nan"))
            for line in svg.iter(f"{SVG}line") if "tick" in line.get("class", "").split()}


def bars(svg: ET.Element) -> list[ET.Element]:
    return [a for a in svg.iter(f"{SVG}a") if "booking" in a.get("class", "").split()]


def rect(bar: ET.Element, css: str) -> tuple[float, float, float, float]:
    for r in bar.iter(f"{SVG}rect"):
        if r.get("class") == css:
            return (float(r.get("x", "nan")), float(r.get("y", "nan")),
                    float(r.get("width", "nan")), float(r.get("height", "nan")))
    raise AssertionError(f"no {css} rect in bar {bar.attrib}")


def x_at(tick_x: dict[int, float], minute: int) -> float:
    """Where `minute` lies, interpolated between the two ticks around it."""
    below = max(m for m in tick_x if m <= minute)
    above = min(m for m in tick_x if m >= minute)
    if above == below:
        return tick_x[below]
    return tick_x[below] + (tick_x[above] - tick_x[below]) * (minute - below) / (above - below)
