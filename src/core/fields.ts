/**
 * The rule `Session.Tag` holds a session's fields to, without Effect: a new
 * session decodes from `{}`, so every field must be optional or have a
 * default. Both lines refuse a required field in `Tag`'s type, and a schema
 * that still does not decode `{}` when `Tag` runs, in the same words.
 *
 * @internal
 */

/**
 * The rule, as a type error and an exception say it.
 *
 * @internal
 */
export const fieldsRule = "every session field must be optional or have a default"

/**
 * `unknown` when `{}` is assignable to the encoded side of a session's
 * schema (`Encoded`), the rule's words otherwise: `Tag` intersects its
 * `fields` with it, so a required field fails to compile with the rule in
 * the error.
 *
 * @internal
 */
export type FieldsRule<Encoded> = {} extends Encoded ? unknown : typeof fieldsRule

/**
 * The start of the exception of a session `id` whose schema does not decode
 * `{}`; each line adds the decoder's own account of the failure.
 *
 * @internal
 */
export const emptyDoesNotDecode = (id: string): string => `effect-session: ${id}: ${fieldsRule}; {} does not decode:`
