/** Whole-number settings of the command-line programs, from a flag or an environment variable alike. */
import { EXIT, UserError } from './usage';

/**
 * A positive whole number in plain decimal digits, or a usage error naming where the value came from (a flag
 * or a variable). Number() alone would read `1e3` as 1000, `0x10` as 16 and ` 7 ` as 7.
 */
export function positiveWhole(value: string, source: string): number {
  const n = Number(value);
  if (!/^[0-9]+$/.test(value) || !Number.isSafeInteger(n) || n < 1) {
    throw new UserError(`${source} must be a positive whole number (got '${value}')`, EXIT.USAGE);
  }
  return n;
}

/** commander's argParser for a positive whole number flag. */
export function positiveWholeFlag(flag: string): (value: string) => number {
  return (value) => positiveWhole(value, flag);
}

/** The variable's value when set (checked, never NaN), else `fallback`. */
export function positiveWholeFromEnv(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const value = env[name];
  return value === undefined ? fallback : positiveWhole(value, name);
}
