/**
 * oslo's booleans, one home for Nova's and Cinder's APIs. In a body, parameter_types.boolean (the same list
 * in nova/api/validation/parameter_types.py and cinder/api/validation/parameter_types.py): JSON booleans
 * and exactly these strings. In a query string, strutils.bool_from_string: its strings, any case.
 */
import { z } from 'zod';

/** strutils.TRUE_STRINGS and FALSE_STRINGS (compared lower-cased). */
export const TRUE_STRINGS: readonly string[] = ['1', 't', 'true', 'on', 'y', 'yes'];
export const FALSE_STRINGS: readonly string[] = ['0', 'f', 'false', 'off', 'n', 'no'];

const BODY_TRUE = [true, 'True', 'TRUE', 'true', '1', 'ON', 'On', 'on', 'YES', 'Yes', 'yes', 'y', 't'];
const BODY_FALSE = [false, 'False', 'FALSE', 'false', '0', 'OFF', 'Off', 'off', 'NO', 'No', 'no', 'n', 'f'];

/** parameter_types.boolean: a body's boolean field. */
export const parameterBoolean = z
  .union([z.boolean(), z.string()])
  .refine((v) => BODY_TRUE.includes(v) || BODY_FALSE.includes(v), 'is not one of the allowed boolean values');

/** What the services make of a checked boolean (strutils.bool_from_string); absent is false. */
export function isTrue(value: boolean | string | undefined): boolean {
  return value === true || (typeof value === 'string' && TRUE_STRINGS.includes(value.toLowerCase()));
}
