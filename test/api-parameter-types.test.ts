/**
 * oslo's booleans as Nova's and Cinder's APIs take them (api/parameter-types.ts): in a body, exactly
 * parameter_types.boolean's values (the same list in both services); what a value means, strutils'.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { serverCreateSchema } from '../api/compute/server-schema';
import { isTrue, parameterBoolean } from '../api/parameter-types';

// nova/api/validation/parameter_types.py and cinder/api/validation/parameter_types.py: `boolean`.
const TRUE = [true, 'True', 'TRUE', 'true', '1', 'ON', 'On', 'on', 'YES', 'Yes', 'yes', 'y', 't'] as const;
const FALSE = [
  false,
  'False',
  'FALSE',
  'false',
  '0',
  'OFF',
  'Off',
  'off',
  'NO',
  'No',
  'no',
  'n',
  'f',
] as const;

test('parameter_types.boolean: every listed value, and what it means', () => {
  for (const v of TRUE) assert.equal(isTrue(parameterBoolean.parse(v)), true, String(v));
  for (const v of FALSE) assert.equal(isTrue(parameterBoolean.parse(v)), false, String(v));
  for (const v of ['maybe', '', 'Y', 'T', 'oN', 2, null]) {
    assert.equal(parameterBoolean.safeParse(v).success, false, String(v));
  }
  assert.equal(isTrue(undefined), false);
});

test("Nova's server create takes Nova's list (before, 'YES', 'On' and others were 400)", () => {
  const body = (value: string) => ({
    server: {
      name: 'vm',
      flavorRef: '1',
      networks: 'none',
      block_device_mapping_v2: [
        { boot_index: 0, uuid: '6b6c5d0e-7b4e-4c2e-9a1a-3a1d8e0e7f11', source_type: 'volume' },
      ].map((bdm) => ({ ...bdm, destination_type: 'volume', delete_on_termination: value })),
    },
  });
  for (const v of [...TRUE, ...FALSE].filter((x): x is Exclude<typeof x, boolean> => typeof x === 'string')) {
    const parsed = serverCreateSchema(79).safeParse(body(v));
    assert.ok(parsed.success, `${v}: ${parsed.success ? '' : parsed.error.message}`);
  }
});
