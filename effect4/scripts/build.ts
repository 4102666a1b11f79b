/**
 * Builds the package into dist/, self-contained:
 *
 *   npm run build
 *
 * This line imports the shared core from outside its own directory
 * (`../../src/core/x.js`), so tsconfig.build.json compiles with the
 * repository as its root: what tsc emits is laid out as the repository is
 * (`effect4/src/X.js` and `src/core/x.js`). This script writes it to dist/
 * as the package is laid out instead:
 *
 *   effect4/src/X   ->  dist/X        (the public modules and internal/)
 *   src/core/x      ->  dist/core/x   (the core files they import)
 *
 * and points each relative import of a .js or .d.ts file at the new place of
 * the file it names (`../../src/core/x.js` becomes `./core/x.js`). It fails
 * when a relative import names a file that is not part of the build (it
 * would be missing from the package), and when a module of src/ has no entry
 * in package.json's "exports" or an entry names a file the build did not
 * write. Source maps carry their sources (`inlineSources`), so they are
 * complete without the .ts files, which the package does not ship.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import ts from "typescript"

const packageDir = Path.resolve(import.meta.dirname, "..")
const configPath = Path.join(packageDir, "tsconfig.build.json")

const fail = (message: string): never => {
  console.error(`build: ${message}`)
  process.exit(1)
}

const config = ts.getParsedCommandLineOfConfigFile(configPath, {}, {
  ...ts.sys,
  onUnRecoverableConfigFileDiagnostic: (diagnostic) =>
    fail(ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n"))
})
if (config === undefined) fail(`cannot read ${configPath}`)
const { fileNames, options } = config!
const rootDir = options.rootDir ?? fail("tsconfig.build.json sets no rootDir")
const outDir = options.outDir ?? fail("tsconfig.build.json sets no outDir")

// Where each part of the compiled tree goes in dist/, and where its sources
// are said to be in the source maps (relative to the package).
const parts = [
  { compiled: Path.join(outDir, Path.relative(rootDir, packageDir), "src"), packaged: outDir },
  { compiled: Path.join(outDir, "src", "core"), packaged: Path.join(outDir, "core") }
]
const sourceParts = [
  { source: Path.join(packageDir, "src"), shown: Path.join(packageDir, "src") },
  { source: Path.join(rootDir, "src", "core"), shown: Path.join(packageDir, "src", "core") }
]

const within = (dir: string, path: string) => {
  const relative = Path.relative(dir, path)
  return relative !== "" && !relative.startsWith("..") && !Path.isAbsolute(relative) ? relative : undefined
}

const relocate = (compiledPath: string): string | undefined => {
  for (const part of parts) {
    const relative = within(part.compiled, compiledPath)
    if (relative !== undefined) return Path.join(part.packaged, relative)
  }
  return undefined
}

const showSource = (sourcePath: string): string | undefined => {
  for (const part of sourceParts) {
    const relative = within(part.source, sourcePath)
    if (relative !== undefined) return Path.join(part.shown, relative)
  }
  return undefined
}

const specifierOf = (fromFile: string, toFile: string) => {
  const relative = Path.relative(Path.dirname(fromFile), toFile).split(Path.sep).join("/")
  return relative.startsWith(".") ? relative : `./${relative}`
}

// --- compile -----------------------------------------------------------------

const program = ts.createProgram({ rootNames: fileNames, options })
const diagnostics = ts.getPreEmitDiagnostics(program)
if (diagnostics.length > 0) {
  console.error(ts.formatDiagnosticsWithColorAndContext(diagnostics, {
    getCanonicalFileName: (fileName) => fileName,
    getCurrentDirectory: () => packageDir,
    getNewLine: () => "\n"
  }))
  process.exit(1)
}

const emitted = new Map<string, string>()
const result = program.emit(undefined, (fileName, text) => {
  emitted.set(Path.resolve(fileName), text)
})
if (result.emitSkipped) fail("tsc emitted nothing")

// --- lay out -------------------------------------------------------------------

// A relative module specifier of an import, export or import type: `from "./x.js"`,
// `import("./x.js")`, `import "./x.js"`.
const relativeImport = /(\bfrom\s*|\bimport\s*\(\s*|\bimport\s*)(["'])(\.\.?\/[^"'\n]*)\2/g

const packaged = new Map<string, string>()
for (const [compiledPath, text] of emitted) {
  const packagedPath = relocate(compiledPath) ??
    fail(`${Path.relative(outDir, compiledPath)} is outside the parts the package ships`)
  if (packaged.has(packagedPath)) fail(`two compiled files would both be ${Path.relative(outDir, packagedPath)}`)

  if (compiledPath.endsWith(".map")) {
    const map = JSON.parse(text) as { sources: Array<string> }
    map.sources = map.sources.map((source) => {
      const sourcePath = Path.resolve(Path.dirname(compiledPath), source)
      const shown = showSource(sourcePath) ?? fail(`${source} (in ${compiledPath}) is no source of the package`)
      return specifierOf(packagedPath, shown)
    })
    packaged.set(packagedPath, JSON.stringify(map))
  } else {
    packaged.set(
      packagedPath,
      text.replace(relativeImport, (_match, keyword: string, quote: string, specifier: string) => {
        const target = Path.resolve(Path.dirname(compiledPath), specifier)
        if (!emitted.has(target)) {
          fail(`${Path.relative(outDir, compiledPath)} imports ${specifier}, which the build does not write`)
        }
        return `${keyword}${quote}${specifierOf(packagedPath, relocate(target)!)}${quote}`
      })
    )
  }
}

// --- check the exports -----------------------------------------------------------

const manifest = JSON.parse(Fs.readFileSync(Path.join(packageDir, "package.json"), "utf8")) as {
  exports: Record<string, string | { types: string; default: string }>
}
const written = (target: string) => packaged.has(Path.join(packageDir, target))
for (const file of Fs.readdirSync(Path.join(packageDir, "src"))) {
  if (!file.endsWith(".ts")) continue
  const module = file.slice(0, -".ts".length)
  const subpath = module === "index" ? "." : `./${module}`
  const entry = manifest.exports[subpath]
  const expected = { types: `./dist/${module}.d.ts`, default: `./dist/${module}.js` }
  if (typeof entry !== "object" || entry.types !== expected.types || entry.default !== expected.default) {
    fail(`package.json "exports" needs "${subpath}": ${JSON.stringify(expected)} for src/${file}`)
  }
}
for (const [subpath, entry] of Object.entries(manifest.exports)) {
  for (const target of typeof entry === "string" ? [entry] : [entry.types, entry.default]) {
    if (target.startsWith("./dist/") && !written(target)) {
      fail(`package.json "exports" "${subpath}" names ${target}, which the build does not write`)
    }
  }
}

// --- write ---------------------------------------------------------------------

Fs.rmSync(outDir, { recursive: true, force: true })
for (const [path, text] of packaged) {
  Fs.mkdirSync(Path.dirname(path), { recursive: true })
  Fs.writeFileSync(path, text)
}
console.log(`build: ${packaged.size} files in ${Path.relative(packageDir, outDir)}/`)
