import { Ajv } from 'ajv'
import type { ErrorObject, ValidateFunction } from 'ajv'
import formatsModule from 'ajv-formats'
import { describeValue } from '../describe-value.js'
import { InvalidOptionError } from '../errors.js'
import type { HubAuthorize, HubMethod, HubMethodDefinition } from './options.js'

/** Checks the arguments of one invocation and returns the first problem, or undefined when they are valid. */
export type ArgumentValidator = (args: unknown[]) => { path: string, message: string } | undefined

/** A hub method as the hub runs it: the declared name, the handler and its checks. */
export interface ResolvedHubMethod {
  name: string
  method: HubMethod
  validate: ArgumentValidator | undefined
  authorize: HubAuthorize | undefined
}

/** Validates one entry of the `methods` option: a function, or a `HubMethodDefinition`. */
export function resolveMethodDefinition (name: string, definition: unknown, compileSchema: (method: string, schema: unknown) => ArgumentValidator): ResolvedHubMethod {
  if (typeof definition === 'function') {
    return { name, method: definition as HubMethod, validate: undefined, authorize: undefined }
  }
  if (typeof definition !== 'object' || definition === null || typeof (definition as HubMethodDefinition).handler !== 'function') {
    throw new InvalidOptionError(`methods.${name}`, `expected a function or { handler, schema?, authorize? }, got ${describeValue(definition)}`, 'Pass the method as a function (context, ...args) => result, or as an object whose handler is that function.')
  }

  const { handler, schema, authorize } = definition as HubMethodDefinition
  if (authorize !== undefined && typeof authorize !== 'function') {
    throw new InvalidOptionError(`methods.${name}.authorize`, `expected a function, got ${describeValue(authorize)}`, 'Pass a function (context, method, args) => boolean, or leave it out.')
  }
  return {
    name,
    method: handler,
    validate: schema === undefined ? undefined : compileSchema(name, schema),
    authorize
  }
}

/**
 * Returns a compiler of hub method argument schemas. It uses Ajv 8 with the formats of
 * ajv-formats, as Fastify's default validator does, but without type coercion or the removal
 * of additional properties: a hub method gets exactly what the client sent, or nothing.
 * Defaults in the schema are filled in, as in Fastify.
 */
export function createArgumentValidatorCompiler (): (method: string, schema: unknown) => ArgumentValidator {
  const ajv = new Ajv({
    allErrors: false,
    coerceTypes: false,
    useDefaults: true,
    // Unknown keywords are mistakes, so they fail ready(). Ajv's tuple and type hints stay off,
    // because Ajv would print them to the console and the plugin has no logger here.
    strict: true,
    strictTuples: false,
    strictTypes: false,
    logger: false
  })
  formatsModule.default(ajv)

  return (method, schema) => {
    if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) {
      throw new InvalidOptionError(`methods.${method}.schema`, `expected a JSON Schema object, got ${describeValue(schema)}`, "Describe the arguments array, such as { type: 'array', items: [{ type: 'string' }], minItems: 1, maxItems: 1 }.")
    }
    let validate: ValidateFunction
    try {
      validate = ajv.compile(schema)
    } catch (err) {
      throw new InvalidOptionError(`methods.${method}.schema`, `the schema does not compile: ${(err as Error).message}`, 'Fix the schema; it must be valid JSON Schema draft-07 for Ajv 8.')
    }
    return (args) => {
      if (validate(args)) return undefined
      return describeFirstError(validate.errors ?? [])
    }
  }
}

/** Formats Ajv's first error with the path into the arguments, such as `arguments/0/text`. */
function describeFirstError (errors: ErrorObject[]): { path: string, message: string } {
  const error = errors[0]
  if (error === undefined) return { path: 'arguments', message: 'are invalid' }
  return { path: `arguments${error.instancePath}`, message: error.message ?? 'is invalid' }
}

