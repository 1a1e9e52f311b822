/** Cinder's request validation (cinder/api/validation): its 400 wording for a body its JSON schema refuses. */
import type { z } from 'zod';
import { volumeMetadataSchema } from '../../cloud/cinder';
import { ApiError } from '../errors';

/** Cinder's parameter_types.extra_specs (volume metadata): the same rules as the cloud's. */
export const cinderMetadataSchema = volumeMetadataSchema;

export function cinderBadRequest(err: z.ZodError): ApiError {
  const issue = err.issues[0]!;
  if (issue.code === 'unrecognized_keys')
    return new ApiError(
      400,
      `Invalid input for field/attribute ${issue.path.join('/') || 'volume'}. Value: ${issue.keys.join(', ')}. Additional properties are not allowed (${issue.keys.map((k) => `'${k}'`).join(', ')} were unexpected)`,
    );
  return new ApiError(400, `Invalid input for field/attribute ${issue.path.join('/')}. ${issue.message}`);
}

/** A quoted string of a Python literal: '...' or "..." (no escapes, as volume metadata keys and values have none). */
const QUOTED = String.raw`(?:'[^'\\]*'|"[^"\\]*")`;
const PAIR = new RegExp(String.raw`\s*(${QUOTED})\s*:\s*(${QUOTED})\s*`, 'y');

/**
 * The `metadata` filter of a volume list: Cinder reads it with ast.literal_eval, so clients send a Python
 * dict literal (`{'Type': 'work'}`, what tempest's urlencode of a dict gives) or JSON. Anything else is 400.
 */
export function parseMetadataFilter(text: string): Record<string, string> {
  const invalid = () => new ApiError(400, `Invalid input received: Invalid metadata filter: ${text}`);
  const body = /^\s*\{(.*)\}\s*$/s.exec(text)?.[1];
  if (body === undefined) throw invalid();
  const pairs: [string, string][] = [];
  if (body.trim() !== '') {
    for (const part of body.split(/,(?=(?:[^'"]|'[^']*'|"[^"]*")*$)/)) {
      PAIR.lastIndex = 0;
      const match = PAIR.exec(part);
      if (!match || PAIR.lastIndex !== part.length) throw invalid();
      pairs.push([match[1]!.slice(1, -1), match[2]!.slice(1, -1)]);
    }
  }
  return Object.fromEntries(pairs);
}
