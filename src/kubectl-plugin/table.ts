/**
 * Text output as kubectl prints it: upper-case headers, columns separated by three spaces, no
 * borders; durations as kubectl shows ages (42s, 5m12s, 3h4m, 2d5h).
 */

/** A table: header cells, then one row of cells per line. Cells never hold newlines. */
export function renderTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const clean = (cell: string) => cell.replace(/[\r\n\t]+/g, " ");
  const all = [headers, ...rows].map((row) => row.map(clean));
  const widths = headers.map((_, i) => Math.max(...all.map((row) => (row[i] ?? "").length)));
  return all
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
        .join("   ")
        .trimEnd(),
    )
    .map((line) => `${line}\n`)
    .join("");
}

/** A duration in whole seconds, as kubectl shows ages: 42s, 5m12s, 3h4m, 2d5h. */
export function formatSeconds(totalSeconds: number): string {
  const s = Math.max(0, Math.round(totalSeconds));
  if (s < 120) return `${s}s`;
  const minutes = Math.floor(s / 60);
  if (minutes < 60) return s % 60 ? `${minutes}m${s % 60}s` : `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return minutes % 60 ? `${hours}h${minutes % 60}m` : `${hours}h`;
  const days = Math.floor(hours / 24);
  return hours % 24 ? `${days}d${hours % 24}h` : `${days}d`;
}

/** Seconds from `nowMs` to an RFC 3339 time, rounded up (0 when it has passed or does not parse). */
export function secondsUntil(time: string | undefined, nowMs: number): number {
  const at = time ? Date.parse(time) : Number.NaN;
  return Number.isFinite(at) ? Math.max(0, Math.ceil((at - nowMs) / 1000)) : 0;
}

/** "3m ago" for a past RFC 3339 time; "" when there is none. */
export function ago(time: string | undefined, nowMs: number): string {
  const at = time ? Date.parse(time) : Number.NaN;
  if (!Number.isFinite(at)) return "";
  return `${formatSeconds(Math.max(0, (nowMs - at) / 1000))} ago`;
}
