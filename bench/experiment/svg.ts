/** One line of a chart. */
export interface Series {
  name: string;
  points: readonly (readonly [number, number])[];
  color: string;
  /** Which y axis the series is scaled to (e.g. loss left, learning rate right). */
  axis: 'left' | 'right';
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

/**
 * A plain SVG polyline chart with two y axes. Hand-written: a handful of lines for a static
 * figure in docs/, where a charting dependency (and a browser to render it) would be overkill.
 */
export function lineChartSvg(
  title: string,
  xLabel: string,
  series: readonly Series[],
  width = 720,
  height = 360,
): string {
  // Legend: two entries per row under the plot (series names can be long).
  const legendRows = Math.ceil(series.length / 2);
  const pad = { left: 60, right: 70, top: 30, bottom: 46 + legendRows * 14 };
  const w = width - pad.left - pad.right;
  const h = height - pad.top - pad.bottom;
  const all = series.flatMap((s) => s.points);
  const xMax = Math.max(1, ...all.map((p) => p[0]));
  const range = (axis: 'left' | 'right'): [number, number] => {
    const ys = series.filter((s) => s.axis === axis).flatMap((s) => s.points.map((p) => p[1]));
    if (ys.length === 0) return [0, 1];
    const lo = Math.min(0, ...ys);
    const hi = Math.max(...ys);
    return [lo, hi > lo ? hi : lo + 1];
  };
  const ranges = { left: range('left'), right: range('right') };
  const px = (x: number): number => pad.left + (x / xMax) * w;
  const py = (y: number, axis: 'left' | 'right'): number => {
    const [lo, hi] = ranges[axis];
    return pad.top + h - ((y - lo) / (hi - lo)) * h;
  };
  const fmtTick = (v: number): string => (Number.isInteger(v) ? String(v) : v.toFixed(1));
  const fmt = (v: number): string => (Math.abs(v) < 0.01 && v !== 0 ? v.toExponential(1) : v.toFixed(2));
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="18" text-anchor="middle" font-size="13">${esc(title)}</text>`,
    `<line x1="${pad.left}" y1="${pad.top + h}" x2="${pad.left + w}" y2="${pad.top + h}" stroke="black"/>`,
    `<line x1="${pad.left}" y1="${pad.top}" x2="${pad.left}" y2="${pad.top + h}" stroke="black"/>`,
    `<line x1="${pad.left + w}" y1="${pad.top}" x2="${pad.left + w}" y2="${pad.top + h}" stroke="black"/>`,
    `<text x="${pad.left + w / 2}" y="${pad.top + h + 28}" text-anchor="middle">${esc(xLabel)}</text>`,
  ];
  for (let i = 0; i <= 4; i++) {
    const f = i / 4;
    out.push(
      `<text x="${px(f * xMax)}" y="${pad.top + h + 14}" text-anchor="middle">${fmtTick(f * xMax)}</text>`,
    );
    for (const axis of ['left', 'right'] as const) {
      const [lo, hi] = ranges[axis];
      const y = lo + f * (hi - lo);
      const x = axis === 'left' ? pad.left - 4 : pad.left + w + 4;
      out.push(
        `<text x="${x}" y="${py(y, axis) + 4}" text-anchor="${axis === 'left' ? 'end' : 'start'}">${fmt(y)}</text>`,
      );
    }
  }
  series.forEach((s, i) => {
    if (s.points.length > 0) {
      const pts = s.points.map(([x, y]) => `${px(x).toFixed(1)},${py(y, s.axis).toFixed(1)}`).join(' ');
      out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="1.5" points="${pts}"/>`);
    }
    const lx = pad.left + (i % 2) * Math.floor(w / 2);
    const ly = pad.top + h + 46 + Math.floor(i / 2) * 14;
    out.push(
      `<line x1="${lx}" y1="${ly - 4}" x2="${lx + 18}" y2="${ly - 4}" stroke="${s.color}" stroke-width="2"/>`,
    );
    out.push(`<text x="${lx + 22}" y="${ly}">${esc(`${s.name} (${s.axis} axis)`)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** One group of bars (e.g. one target) with one bar per series, optional error bars. */
export interface BarGroup {
  label: string;
  bars: ReadonlyArray<{ series: string; value: number; lo?: number; hi?: number }>;
}

/**
 * Grouped bar chart with optional 95% interval whiskers, one colour per series — the ablation
 * figure. Hand-written like `lineChartSvg`.
 */
export function barChartSvg(
  title: string,
  yLabel: string,
  groups: readonly BarGroup[],
  colors: Readonly<Record<string, string>>,
  width = 720,
  height = 360,
): string {
  const series = [...new Set(groups.flatMap((g) => g.bars.map((b) => b.series)))];
  const legendRows = Math.ceil(series.length / 3);
  const pad = { left: 60, right: 20, top: 30, bottom: 40 + legendRows * 14 };
  const w = width - pad.left - pad.right;
  const h = height - pad.top - pad.bottom;
  const top = Math.max(1e-9, ...groups.flatMap((g) => g.bars.map((b) => Math.max(b.value, b.hi ?? 0)))) * 1.1;
  const py = (v: number): number => pad.top + h - (v / top) * h;
  const groupW = w / Math.max(1, groups.length);
  const barW = (groupW * 0.8) / Math.max(1, series.length);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="18" text-anchor="middle" font-size="13">${esc(title)}</text>`,
    `<line x1="${pad.left}" y1="${pad.top + h}" x2="${pad.left + w}" y2="${pad.top + h}" stroke="black"/>`,
    `<line x1="${pad.left}" y1="${pad.top}" x2="${pad.left}" y2="${pad.top + h}" stroke="black"/>`,
    `<text x="14" y="${pad.top + h / 2}" transform="rotate(-90 14 ${pad.top + h / 2})" text-anchor="middle">${esc(yLabel)}</text>`,
  ];
  for (let i = 0; i <= 4; i++) {
    const v = (top * i) / 4;
    out.push(`<text x="${pad.left - 4}" y="${py(v) + 4}" text-anchor="end">${v.toFixed(3)}</text>`);
  }
  groups.forEach((g, gi) => {
    const x0 = pad.left + gi * groupW + groupW * 0.1;
    g.bars.forEach((b) => {
      const k = series.indexOf(b.series);
      const x = x0 + k * barW;
      out.push(
        `<rect x="${x.toFixed(1)}" y="${py(b.value).toFixed(1)}" width="${(barW * 0.9).toFixed(1)}" height="${(pad.top + h - py(b.value)).toFixed(1)}" fill="${colors[b.series] ?? '#888'}"/>`,
      );
      if (b.lo !== undefined && b.hi !== undefined) {
        const cx = (x + barW * 0.45).toFixed(1);
        out.push(
          `<line x1="${cx}" y1="${py(b.hi).toFixed(1)}" x2="${cx}" y2="${py(b.lo).toFixed(1)}" stroke="black"/>`,
        );
      }
      out.push(
        `<text x="${(x + barW * 0.45).toFixed(1)}" y="${(py(b.value) - 3).toFixed(1)}" text-anchor="middle" font-size="9">${b.value.toFixed(3)}</text>`,
      );
    });
    out.push(
      `<text x="${pad.left + gi * groupW + groupW / 2}" y="${pad.top + h + 14}" text-anchor="middle">${esc(g.label)}</text>`,
    );
  });
  series.forEach((s, i) => {
    const lx = pad.left + (i % 3) * Math.floor(w / 3);
    const ly = pad.top + h + 34 + Math.floor(i / 3) * 14;
    out.push(`<rect x="${lx}" y="${ly - 9}" width="12" height="10" fill="${colors[s] ?? '#888'}"/>`);
    out.push(`<text x="${lx + 16}" y="${ly}">${esc(s)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
