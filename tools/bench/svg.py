"""The RTP send-interval plot, written as SVG by hand (no plotting library on a Pi).

`interval_histogram_svg(series, low=10.0, high=30.0, bin_ms=0.25) -> str`: `series` is a list of
`(label, intervals_ms)`; each becomes one step line of the share of packets per bin, on a
logarithmic axis (a healthy sender puts almost everything in one or two bins, so the tails only
show on a log scale). Intervals outside [low, high) are counted in the edge bins.
"""

import math
from xml.sax.saxutils import escape

from tools.bench.stats import percentile

WIDTH, HEIGHT = 760, 420
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 40, 60
COLOURS = ("#c0392b", "#2471a3", "#229954", "#7d3c98")
FLOOR_SHARE = 1e-4  # 0.01 %: the bottom of the log axis


def _bins(values, low, high, bin_ms):
    count = int(round((high - low) / bin_ms))
    bins = [0] * count
    for value in values:
        index = int((value - low) // bin_ms)
        bins[min(count - 1, max(0, index))] += 1
    total = float(len(values)) or 1.0
    return [number / total for number in bins]


def interval_histogram_svg(series, low=10.0, high=30.0, bin_ms=0.25):
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM

    def x_of(ms):
        return LEFT + (ms - low) / (high - low) * plot_w

    def y_of(share):
        share = max(share, FLOOR_SHARE)
        return TOP + (-math.log10(share)) / -math.log10(FLOOR_SHARE) * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="22" text-anchor="middle" font-size="15">'
        'RTP send interval (share of packets per '
        f'{bin_ms:g} ms bin, log scale)</text>',
    ]
    for exponent in range(0, 5):
        share = 10.0 ** -exponent
        y = y_of(share)
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" '
                     'stroke="#ddd"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f'{share * 100:g} %</text>')
    tick = low
    while tick <= high + 1e-9:
        x = x_of(tick)
        parts.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + plot_h}" '
                     f'stroke="{"#999" if tick == 20 else "#eee"}"/>')
        parts.append(f'<text x="{x:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">'
                     f'{tick:g}</text>')
        tick += 2.0
    parts.append(f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 18}" text-anchor="middle">'
                 f'interval between consecutive RTP packets sent (ms); outside {low:g}-{high:g} ms '
                 'counted in the edge bins</text>')
    parts.append(f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" '
                 'stroke="#333"/>')
    for index, (label, values) in enumerate(series):
        colour = COLOURS[index % len(COLOURS)]
        if values:
            shares = _bins(values, low, high, bin_ms)
            points = [(x_of(low), y_of(0))]
            for number, share in enumerate(shares):
                left = low + number * bin_ms
                points += [(x_of(left), y_of(share)), (x_of(left + bin_ms), y_of(share))]
            points.append((x_of(high), y_of(0)))
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" '
                         'stroke-width="1.6" stroke-opacity="0.85"/>')
            legend = (f"{label}: n={len(values)}, p50={percentile(values, 50):.2f} ms, "
                      f"p99={percentile(values, 99):.2f} ms")
        else:
            legend = f"{label}: no data"
        y = TOP + 16 + index * 18
        parts.append(f'<line x1="{LEFT + 10}" y1="{y - 4}" x2="{LEFT + 34}" y2="{y - 4}" '
                     f'stroke="{colour}" stroke-width="3"/>')
        parts.append(f'<text x="{LEFT + 40}" y="{y}">{escape(legend)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
