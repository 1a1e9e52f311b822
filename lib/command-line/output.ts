/**
 * Output like the OpenStack client's: `-f table` (boxed tables; `show` as Field | Value) or `-f json`
 * (machine-readable, nothing else on stdout). Human notes go to stderr so that JSON stays parseable.
 * Names, faults and console output come from other users: their control characters (ANSI escapes that
 * would clear the screen, move the cursor or retitle the terminal) are shown escaped, never written raw.
 */
import Table from 'cli-table3';

export type OutputFormat = 'table' | 'json';

export interface Column<T> {
  header: string;
  value: (row: T) => unknown;
}

/** C0 controls but newline and tab, DEL, and C1 controls (0x9b is a one-byte CSI on some terminals). */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL_CHARACTERS = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g;

/** The text with every control character (newline and tab excepted) shown as `\x1b`: safe to print. */
export function escapeControls(text: string): string {
  return text.replace(CONTROL_CHARACTERS, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

function cell(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return escapeControls(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}

export function renderTable<T>(columns: Column<T>[], rows: T[]): string {
  const table = new Table({ head: columns.map((c) => c.header), style: { head: [], border: [] } });
  for (const row of rows) table.push(columns.map((c) => cell(c.value(row))));
  return table.toString();
}

/** `openstack ... show`: one Field | Value row per field. */
export function renderFields(fields: Array<[string, unknown]>): string {
  const table = new Table({ head: ['Field', 'Value'], style: { head: [], border: [] } });
  for (const [name, value] of fields) table.push([name, cell(value)]);
  return table.toString();
}

/** JSON.stringify escapes C0 controls already; DEL and the C1 range are escaped here as well (still JSON). */
export function renderJson(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(
    /[\x7f-\x9f]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

export function print(line: string): void {
  process.stdout.write(`${escapeControls(line)}\n`);
}

export function note(line: string): void {
  process.stderr.write(`${escapeControls(line)}\n`);
}
