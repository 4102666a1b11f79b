/**
 * The core (`src/core/`) is shared by the Effect 3 and Effect 4 lines: plain
 * TypeScript with no import of `effect` or `@effect/*` (DESIGN §9). This
 * holds it to that, import by import.
 */
import { describe, expect, it } from "vitest"
import { readdirSync, readFileSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"

const core = fileURLToPath(new URL("../../src/core/", import.meta.url))

const sources = (dir: string): Array<string> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? sources(join(dir, entry.name))
      : entry.name.endsWith(".ts")
      ? [join(dir, entry.name)]
      : []
  )

/** Every module specifier a file imports or re-exports (static and dynamic). */
const specifiers = (text: string): Array<string> =>
  [...text.matchAll(/(?:import|export)\s[^"']*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)|import\s*["']([^"']+)["']/g)]
    .map((m) => m[1] ?? m[2] ?? m[3])

describe("src/core", () => {
  it("imports nothing of effect or @effect/*, and only core modules and node: built-ins", () => {
    const files = sources(core)
    expect(files.length).toBeGreaterThan(0)
    for (const file of files) {
      for (const specifier of specifiers(readFileSync(file, "utf8"))) {
        const insideCore = specifier.startsWith(".") && resolve(dirname(file), specifier).startsWith(core)
        expect(insideCore || specifier.startsWith("node:"), `${file} imports ${specifier}`).toBe(true)
        expect(specifier, `${file} imports ${specifier}`).not.toMatch(/^(effect|@effect\/)/)
      }
    }
  })

  it("the check sees an import of effect", () => {
    expect(specifiers(`import { Effect } from "effect"\nimport type { X } from "@effect/platform"`)).toEqual([
      "effect",
      "@effect/platform"
    ])
  })
})
