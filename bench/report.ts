/**
 * Pure parts of the benchmark: summaries of repeated measurements, the printed table, the ratios
 * against the targets of issue 5, and a hand-written SVG chart. No I/O here.
 */

/** One figure measured several times. */
export interface Figure {
  readonly id: string;
  readonly label: string;
  readonly unit: string;
  readonly samples: number[];
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly group: "raw" | "tera-cdc" | "latency" | "memory" | "peers";
}

export interface Ratio {
  readonly label: string;
  readonly numerator: string;
  readonly denominator: string;
  readonly value: number;
  /** The target (value must be at least this), when the issue sets one. */
  readonly atLeast?: number;
}

export interface Target {
  readonly label: string;
  readonly figure: string;
  readonly value: number;
  readonly limit: number;
  readonly kind: "at-least" | "below";
  readonly met: boolean;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Nearest-rank percentile (p in 0..100) of unsorted values. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = Float64Array.from(values).sort();
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export function figure(id: string, label: string, unit: string, group: Figure["group"], samples: number[]): Figure {
  const finite = samples.filter((s) => Number.isFinite(s));
  return {
    id,
    label,
    unit,
    group,
    samples,
    median: median(finite),
    min: finite.length ? Math.min(...finite) : Number.NaN,
    max: finite.length ? Math.max(...finite) : Number.NaN,
  };
}

export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return "-";
  if (Math.abs(value) >= 100) return Math.round(value).toLocaleString("en-US");
  if (Math.abs(value) >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

/** The table printed at the end of a run (Markdown, so it pastes into docs as is). */
export function renderTable(figures: readonly Figure[], ratios: readonly Ratio[], targets: readonly Target[]): string {
  const lines = ["| figure | median | min | max | unit | runs |", "|---|---:|---:|---:|---|---:|"];
  for (const f of figures) {
    lines.push(`| ${f.label} | ${formatNumber(f.median)} | ${formatNumber(f.min)} | ${formatNumber(f.max)} | ${f.unit} | ${f.samples.length} |`);
  }
  lines.push("", "| ratio (medians) | value |", "|---|---:|");
  for (const r of ratios) lines.push(`| ${r.label} | ${formatNumber(r.value)} |`);
  lines.push("", "| target | measured | limit | met |", "|---|---:|---:|---|");
  for (const t of targets) {
    lines.push(`| ${t.label} | ${formatNumber(t.value)} | ${t.kind === "at-least" ? "≥" : "<"} ${formatNumber(t.limit)} | ${t.met ? "yes" : "**no**"} |`);
  }
  return lines.join("\n");
}

export function ratio(label: string, figures: ReadonlyMap<string, Figure>, numerator: string, denominator: string): Ratio | null {
  const a = figures.get(numerator);
  const b = figures.get(denominator);
  if (!a || !b || !(b.median > 0)) return null;
  return { label, numerator, denominator, value: a.median / b.median };
}

export function target(label: string, figureId: string, value: number | undefined, limit: number, kind: Target["kind"]): Target | null {
  if (value === undefined || !Number.isFinite(value)) return null;
  return { label, figure: figureId, value, limit, kind, met: kind === "at-least" ? value >= limit : value < limit };
}

function escapeXml(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}

/** Horizontal bars of one group of figures (median bar, min–max whisker), one panel per unit. */
export function renderSvg(title: string, panels: { title: string; unit: string; figures: readonly Figure[] }[]): string {
  const width = 900;
  const labelWidth = 330;
  const barArea = width - labelWidth - 110;
  const rowHeight = 22;
  let y = 40;
  const parts: string[] = [];
  parts.push(`<text x="10" y="24" font-size="16" font-weight="bold">${escapeXml(title)}</text>`);
  for (const panel of panels) {
    if (panel.figures.length === 0) continue;
    y += 14;
    parts.push(`<text x="10" y="${y}" font-size="13" font-weight="bold">${escapeXml(panel.title)} (${escapeXml(panel.unit)})</text>`);
    y += 8;
    const top = Math.max(...panel.figures.map((f) => (Number.isFinite(f.max) ? f.max : 0)), 1);
    for (const f of panel.figures) {
      const scale = (v: number) => (Number.isFinite(v) ? (v / top) * barArea : 0);
      const barY = y + 4;
      const color = f.group === "raw" ? "#9e9e9e" : f.group === "peers" ? "#d98c4a" : "#3a7bd5";
      parts.push(`<text x="10" y="${barY + 12}" font-size="11">${escapeXml(f.label)}</text>`);
      parts.push(`<rect x="${labelWidth}" y="${barY}" width="${scale(f.median).toFixed(1)}" height="14" fill="${color}"/>`);
      if (Number.isFinite(f.min) && Number.isFinite(f.max)) {
        const x1 = labelWidth + scale(f.min);
        const x2 = labelWidth + scale(f.max);
        parts.push(`<line x1="${x1.toFixed(1)}" y1="${barY + 7}" x2="${x2.toFixed(1)}" y2="${barY + 7}" stroke="#222" stroke-width="1"/>`);
        parts.push(`<line x1="${x1.toFixed(1)}" y1="${barY + 3}" x2="${x1.toFixed(1)}" y2="${barY + 11}" stroke="#222"/>`);
        parts.push(`<line x1="${x2.toFixed(1)}" y1="${barY + 3}" x2="${x2.toFixed(1)}" y2="${barY + 11}" stroke="#222"/>`);
      }
      parts.push(`<text x="${labelWidth + scale(f.median) + 6}" y="${barY + 12}" font-size="11">${escapeXml(formatNumber(f.median))}</text>`);
      y += rowHeight;
    }
    y += 6;
  }
  const height = y + 16;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    ...parts,
    `<text x="10" y="${height - 4}" font-size="10" fill="#555">bars: median; whiskers: min–max; grey: raw limits, blue: tera-cdc, orange: trigger + pg_notify</text>`,
    "</svg>",
    "",
  ].join("\n");
}
