/**
 * Output like the OpenStack client's: `-f table` (boxed tables; `show` as Field | Value) or `-f json`
 * (machine-readable, nothing else on stdout). Human notes go to stderr so that JSON stays parseable.
 */
import Table from 'cli-table3';

export type OutputFormat = 'table' | 'json';

export interface Column<T> {
  header: string;
  value: (row: T) => unknown;
}

function cell(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return value;
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

export function renderJson(value: unknown): string {
  return JSON.stringify(value, null, 2);
}

export function print(line: string): void {
  process.stdout.write(`${line}\n`);
}

export function note(line: string): void {
  process.stderr.write(`${line}\n`);
}
