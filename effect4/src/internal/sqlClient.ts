/**
 * What the SqlClient modules of this package (`SqlMysql`, `SqlSqlite`)
 * share: the options every client takes, and the layers over a `make`.
 *
 * @internal
 */
import type { Scope } from "effect"
import { Config, Effect, Layer } from "effect"
import * as Reactivity from "effect/reactivity/Reactivity"
import * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import * as Statement from "effect/sql/Statement"

/** @internal */
export interface CommonConfig {
  readonly spanAttributes?: Record<string, unknown> | undefined
  readonly transformResultNames?: ((str: string) => string) | undefined
  readonly transformQueryNames?: ((str: string) => string) | undefined
}

/**
 * The part of `SqlClient.make`'s options the common settings decide: the
 * application's span attributes before the client's own, and the result
 * name transform.
 *
 * @internal
 */
export const commonOptions = (
  config: CommonConfig,
  attributes: ReadonlyArray<readonly [string, unknown]>
): Pick<SqlClient.SqlClient.MakeOptions, "spanAttributes" | "transformRows"> => ({
  spanAttributes: [...(config.spanAttributes === undefined ? [] : Object.entries(config.spanAttributes)), ...attributes],
  transformRows: config.transformResultNames === undefined
    ? undefined
    : Statement.defaultTransforms(config.transformResultNames).array
})

type Make<C> = (config: C) => Effect.Effect<SqlClient.SqlClient, SqlError, Scope.Scope | Reactivity.Reactivity>

/**
 * A client's `layer`: the `SqlClient` for the layer's scope, with the
 * `Reactivity` it needs.
 *
 * @internal
 */
export const layer = <C>(make: Make<C>) => (config: C): Layer.Layer<SqlClient.SqlClient, SqlError> =>
  Layer.effect(SqlClient.SqlClient, make(config)).pipe(Layer.provide(Reactivity.layer))

/**
 * A client's `layerConfig`: `layer`, with the settings read from `Config`.
 *
 * @internal
 */
export const layerConfig = <C>(make: Make<C>) =>
(config: Config.Wrap<C>): Layer.Layer<SqlClient.SqlClient, Config.ConfigError | SqlError> =>
  Layer.effect(SqlClient.SqlClient, Effect.flatMap(Config.unwrap(config), make)).pipe(Layer.provide(Reactivity.layer))
