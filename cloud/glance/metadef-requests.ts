/**
 * Glance's metadata definition shapes (glance/api/v2/metadef_*.py JSON schemas and the WSME models of
 * glance/api/v2/model): what a namespace, an object, a property type, a tag and a resource type
 * association may hold. Unknown attributes are refused where Glance's schema says `additionalProperties:
 * false` (a namespace, an object, a tag list) and dropped inside a property type, as WSME drops them.
 */
import { z } from 'zod';
import { CloudError } from '../errors';

const JSON_TYPES = ['array', 'boolean', 'integer', 'number', 'object', 'string'] as const;
const jsonType = z.enum(JSON_TYPES).nullable();
const positiveInteger = z.number().int().min(0);
const uniqueStrings = z
  .array(z.string())
  .refine((a) => new Set(a).size === a.length, 'has non-unique elements');

function isRegex(pattern: string): boolean {
  try {
    new RegExp(pattern, 'u');
    return true;
  } catch {
    return false;
  }
}

/** A property type: `get_schema_definitions()['property']` of metadef_namespaces.py, with the model's fields. */
export const propertyTypeSchema = z.object({
  name: z.string().max(80).optional(),
  title: z.string(),
  description: z.string().optional(),
  operators: z.array(z.string()).optional(),
  type: jsonType,
  required: uniqueStrings.optional(),
  minimum: z.number().optional(),
  maximum: z.number().optional(),
  maxLength: positiveInteger.optional(),
  minLength: positiveInteger.optional(),
  pattern: z.string().refine(isRegex, 'is not a regex').optional(),
  enum: z.array(z.unknown()).optional(),
  readonly: z.boolean().optional(),
  confidential: z.boolean().optional(),
  default: z.unknown().optional(),
  items: z.object({ type: jsonType.optional(), enum: z.array(z.unknown()).optional() }).optional(),
  maxItems: positiveInteger.optional(),
  minItems: positiveInteger.optional(),
  uniqueItems: z.boolean().optional(),
  additionalItems: z.boolean().optional(),
});
export type PropertyType = z.infer<typeof propertyTypeSchema>;

const propertyTypes = z.record(z.string().max(80), propertyTypeSchema.omit({ name: true }));

/** A single property (POST/PUT .../properties): the name is required there. */
export const namedPropertySchema = propertyTypeSchema.extend({ name: z.string().min(1).max(80) });

export const metadefObjectSchema = z.strictObject({
  name: z.string().min(1).max(80),
  description: z.string().optional(),
  required: uniqueStrings.optional(),
  properties: propertyTypes.optional(),
});
export type MetadefObjectInput = z.infer<typeof metadefObjectSchema>;

export const resourceTypeAssociationSchema = z.strictObject({
  name: z.string().min(1).max(80),
  prefix: z.string().max(80).optional(),
  properties_target: z.string().max(80).optional(),
});
export type ResourceTypeAssociationInput = z.infer<typeof resourceTypeAssociationSchema>;

export const metadefTagSchema = z.strictObject({ name: z.string().min(1).max(80) });
export const metadefTagsSchema = z.strictObject({ tags: z.array(metadefTagSchema) });

export const namespaceSchema = z.strictObject({
  namespace: z.string().min(1).max(80),
  display_name: z.string().max(80).optional(),
  description: z.string().max(500).optional(),
  visibility: z.enum(['public', 'private']).optional(),
  protected: z.boolean().optional(),
  owner: z.string().max(255).optional(),
  resource_type_associations: z.array(resourceTypeAssociationSchema).optional(),
  properties: propertyTypes.optional(),
  objects: z.array(metadefObjectSchema).optional(),
  tags: z.array(metadefTagSchema).optional(),
});
export type NamespaceInput = z.infer<typeof namespaceSchema>;

/**
 * Validates a body against one of the shapes above; a mismatch is Glance's 400 "Provided object does not
 * match schema '<name>': ...".
 */
export function parseMetadef<S extends z.ZodType>(schema: S, input: unknown, name: string): z.infer<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const where = issue?.path.length ? `${issue.path.join('.')}: ` : '';
  throw new CloudError(
    'BadRequest',
    `Provided object does not match schema '${name}': ${where}${issue?.message ?? 'invalid'}`,
  );
}
