/**
 * Type-checks every TypeScript block of README.md and docs/**\/*.md, so that
 * what a reader copies compiles against the package as it is.
 *
 *   npm run docs:check
 *
 * Each ```ts block is a module of its own, checked with the project's
 * compiler options (`effect-session` resolves to `src/`), except that unused
 * names are allowed: a snippet may define what the prose uses later. An HTML
 * comment right before a block's fence changes that, and is invisible on a
 * rendered page:
 *
 *   <!-- doc-check: continues -->   the block continues the previous block
 *                                   of the file (a tour): checked as one
 *                                   module with it, imports merged
 *   <!-- doc-check: skip <why> -->  a deliberate fragment: not checked,
 *                                   listed by name with its reason
 *   <!-- doc-check: file <path> --> the block is that file of the repository,
 *                                   character for character (and is checked)
 *   <!-- doc-check: fails <text> --> a deliberate mistake (troubleshooting):
 *                                   checked after the blocks it continues,
 *                                   it must fail with an error containing
 *                                   <text>, and it is not continued
 *
 * Each TypeScript block and example must also build its session store before
 * its HTTP server listens: in a `.pipe(…)` chain, a `Layer.provide` of a
 * server (`NodeHttpServer.layer`, `ServerLive`, …) must come before the
 * `Layer.provide` of a store (the last one provided is built first). In the
 * other order a request that arrives while the store starts is accepted and
 * never answered.
 *
 * Shell blocks are checked too: a package of package.json's devDependencies
 * installed with a version must use exactly that range, and `effect` and
 * `@effect/*` must never be installed without one (npm's `latest` of several
 * of them is Effect 4).
 */
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { join, relative } from "node:path"
import ts from "typescript"

const root = join(import.meta.dirname, "..")

interface Block {
  readonly file: string
  /** 1-based line of the block's first code line in the markdown file */
  readonly line: number
  readonly lang: string
  readonly code: string
  readonly marker: Marker | undefined
}

type Marker =
  | { readonly _tag: "continues" }
  | { readonly _tag: "skip"; readonly reason: string }
  | { readonly _tag: "file"; readonly path: string }
  | { readonly _tag: "fails"; readonly error: string }

const markdownFiles = (): Array<string> => {
  const found: Array<string> = []
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const path = join(dir, entry.name)
      if (entry.isDirectory()) walk(path)
      else if (entry.name.endsWith(".md")) found.push(path)
    }
  }
  walk(join(root, "docs"))
  return [join(root, "README.md"), ...found]
}

const markerPattern = /^<!--\s*doc-check:\s*(continues|skip|file|fails)\b\s*(.*?)\s*-->$/

const parseMarker = (line: string | undefined, where: string): Marker | undefined => {
  const match = line === undefined ? null : markerPattern.exec(line.trim())
  if (match === null) {
    if (line !== undefined && /doc-check/.test(line)) throw new Error(`${where}: unreadable doc-check marker: ${line}`)
    return undefined
  }
  const [, kind, argument] = match
  switch (kind) {
    case "continues":
      return { _tag: "continues" }
    case "skip":
      if (argument === "") throw new Error(`${where}: a skipped block says why: <!-- doc-check: skip <why> -->`)
      return { _tag: "skip", reason: argument }
    case "fails":
      if (argument === "") throw new Error(`${where}: say which error: <!-- doc-check: fails <text of the error> -->`)
      return { _tag: "fails", error: argument }
    default:
      return { _tag: "file", path: argument }
  }
}

/** The fenced code blocks of a markdown file, with the marker before each. */
const blocksOf = (file: string): Array<Block> => {
  const lines = readFileSync(file, "utf8").split("\n")
  const blocks: Array<Block> = []
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*([\w-]*)/.exec(lines[i])
    if (open === null) continue
    const [, indent, fence, lang] = open
    const body: Array<string> = []
    let j = i + 1
    while (j < lines.length && !(lines[j].trim().startsWith(fence) && lines[j].trim().replace(/[`~]/g, "") === "")) {
      body.push(lines[j].startsWith(indent) ? lines[j].slice(indent.length) : lines[j])
      j++
    }
    // the marker sits on the nearest non-blank line above the fence
    let k = i - 1
    while (k >= 0 && lines[k].trim() === "") k--
    const where = `${relative(root, file)}:${i + 1}`
    blocks.push({ file, line: i + 2, lang, code: body.join("\n"), marker: parseMarker(lines[k], where) })
    i = j
  }
  return blocks
}

const isTypeScript = (block: Block) => ["ts", "typescript", "mts"].includes(block.lang)

// --- shell blocks: pinned versions ------------------------------------------

const devDependencies: Record<string, string> = JSON.parse(readFileSync(join(root, "package.json"), "utf8"))
  .devDependencies

const checkInstalls = (block: Block): Array<string> => {
  const problems: Array<string> = []
  block.code.split("\n").forEach((text, offset) => {
    const command = text.replace(/#.*$/, "")
    if (!/\bnpm\s+(install|i|add)\b/.test(command)) return
    for (const word of command.split(/\s+/)) {
      const at = word.lastIndexOf("@")
      const name = at > 0 ? word.slice(0, at) : word
      const version = at > 0 ? word.slice(at + 1) : undefined
      const where = `${relative(root, block.file)}:${block.line + offset}`
      if (version === undefined && (name === "effect" || name.startsWith("@effect/"))) {
        problems.push(`${where}: ${name} is installed without a version; pin it as package.json does ("${devDependencies[name] ?? "?"}")`)
      } else if (version !== undefined && name in devDependencies && devDependencies[name] !== version) {
        problems.push(`${where}: ${name}@${version}, but package.json's devDependencies say ${name}@${devDependencies[name]}`)
      }
    }
  })
  return problems
}

// --- TypeScript blocks -------------------------------------------------------

interface Module {
  readonly name: string
  readonly text: string
  /** for each line of `text`, where it came from */
  readonly origins: ReadonlyArray<{ readonly file: string; readonly line: number }>
  readonly label: string
  /** the module must fail with an error containing this */
  readonly fails?: string | undefined
}

/**
 * Joins a chain of blocks into one module: their imports are merged at the
 * top (a tour imports `Effect` in two blocks), the rest follows in order.
 */
const moduleOf = (chain: ReadonlyArray<Block>, index: number, fails?: string): Module => {
  const named = new Map<string, Map<string, string>>() // module → local name → specifier text
  const other = new Map<string, { text: string; origin: { file: string; line: number } }>()
  const lines: Array<string> = []
  const origins: Array<{ file: string; line: number }> = []
  for (const block of chain) {
    const source = ts.createSourceFile("block.ts", block.code, ts.ScriptTarget.ES2022, true)
    const importLines = new Set<number>()
    for (const statement of source.statements) {
      if (!ts.isImportDeclaration(statement)) continue
      const start = source.getLineAndCharacterOfPosition(statement.getStart()).line
      const end = source.getLineAndCharacterOfPosition(statement.getEnd()).line
      for (let l = start; l <= end; l++) importLines.add(l)
      const from = (statement.moduleSpecifier as ts.StringLiteral).text
      const clause = statement.importClause
      const bindings = clause?.namedBindings
      if (clause !== undefined && clause.name === undefined && bindings !== undefined && ts.isNamedImports(bindings)) {
        const specifiers = named.get(from) ?? new Map<string, string>()
        for (const element of bindings.elements) {
          const text = element.getText(source)
          const local = element.name.text
          // `import type { A }` and `import { type A }` both become `type A`
          specifiers.set(local, clause.isTypeOnly && !element.isTypeOnly ? `type ${text}` : specifiers.get(local) ?? text)
        }
        named.set(from, specifiers)
      } else {
        const text = statement.getText(source)
        if (!other.has(text)) other.set(text, { text, origin: { file: block.file, line: block.line + start } })
      }
    }
    block.code.split("\n").forEach((text, l) => {
      if (importLines.has(l)) return
      lines.push(text)
      origins.push({ file: block.file, line: block.line + l })
    })
  }
  const first = chain[0]
  const header: Array<string> = []
  const headerOrigins: Array<{ file: string; line: number }> = []
  for (const { origin, text } of other.values()) {
    header.push(text.replace(/\n/g, " "))
    headerOrigins.push(origin)
  }
  for (const [from, specifiers] of named) {
    header.push(`import { ${[...specifiers.values()].join(", ")} } from ${JSON.stringify(from)}`)
    headerOrigins.push({ file: first.file, line: first.line })
  }
  const file = relative(root, first.file)
  return {
    name: join(root, "scripts", ".doc-blocks", `${file.replace(/[^\w]+/g, "_")}_${index}.ts`),
    text: [...header, ...lines, "export {}", ""].join("\n"),
    origins: [...headerOrigins, ...origins, { file: first.file, line: first.line }],
    label: fails === undefined
      ? `${file}:${first.line - 1}${chain.length > 1 ? ` (+${chain.length - 1} continuing)` : ""}`
      : `${relative(root, chain[chain.length - 1].file)}:${chain[chain.length - 1].line - 1}`,
    fails
  }
}

const compilerOptions = (): ts.CompilerOptions => {
  const configFile = ts.readConfigFile(join(root, "tsconfig.json"), ts.sys.readFile)
  if (configFile.error !== undefined) throw new Error(ts.flattenDiagnosticMessageText(configFile.error.messageText, "\n"))
  const parsed = ts.parseJsonConfigFileContent(configFile.config, ts.sys, root)
  return { ...parsed.options, noEmit: true, noUnusedLocals: false, noUnusedParameters: false, sourceMap: false, declaration: false }
}

const typeCheck = (modules: ReadonlyArray<Module>): Array<string> => {
  const options = compilerOptions()
  const virtual = new Map(modules.map((m) => [m.name, m]))
  const host = ts.createCompilerHost(options)
  const { fileExists, getSourceFile, readFile } = host
  host.fileExists = (name) => virtual.has(name) || fileExists.call(host, name)
  host.readFile = (name) => virtual.get(name)?.text ?? readFile.call(host, name)
  host.getSourceFile = (name, language, ...rest) => {
    const module = virtual.get(name)
    return module === undefined
      ? getSourceFile.call(host, name, language, ...rest)
      : ts.createSourceFile(name, module.text, language, true)
  }
  const program = ts.createProgram([...virtual.keys()], options, host)
  const problems: Array<string> = []
  for (const diagnostic of [...program.getOptionsDiagnostics(), ...program.getGlobalDiagnostics()]) {
    problems.push(`compiler: ${ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n")}`)
  }
  // the first few errors of a block say what is wrong; the rest follow from them
  const perBlock = 4
  for (const module of modules) {
    const source = program.getSourceFile(module.name)!
    const diagnostics = [...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source)]
    if (module.fails !== undefined) {
      const expected = module.fails
      const texts = diagnostics.map((d) => ts.flattenDiagnosticMessageText(d.messageText, "\n"))
      if (!texts.some((text) => text.includes(expected))) {
        problems.push(
          `[block at ${module.label}]: should fail with "${expected}", but ${
            texts.length === 0 ? "it compiles" : `fails with:\n  ${texts.join("\n  ")}`
          }`
        )
      }
      continue
    }
    if (diagnostics.length > perBlock) {
      problems.push(`[block at ${module.label}: ${diagnostics.length} errors, the first ${perBlock}:]`)
    }
    for (const diagnostic of diagnostics.slice(0, perBlock)) {
      const line = diagnostic.start === undefined ? 0 : source.getLineAndCharacterOfPosition(diagnostic.start).line
      const origin = module.origins[line] ?? module.origins[0]
      problems.push(
        `${relative(root, origin.file)}:${origin.line}: ${ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n  ")}` +
          ` [block at ${module.label}]`
      )
    }
  }
  return problems
}

// --- start-up order ---------------------------------------------------------

const serverPattern = /HttpServer\.layer|ServerLive|HttpLive/
const storePattern = /Store\b|Store\.|store/

/** `.pipe(…)` chains that provide a store before a server: the server would listen first. */
const checkProvideOrder = (text: string, where: (line: number) => string): Array<string> => {
  const problems: Array<string> = []
  const source = ts.createSourceFile("order.ts", text, ts.ScriptTarget.ES2022, true)
  const visit = (node: ts.Node) => {
    if (
      ts.isCallExpression(node) && ts.isPropertyAccessExpression(node.expression) &&
      node.expression.name.text === "pipe"
    ) {
      const provided = node.arguments.flatMap((argument) =>
        ts.isCallExpression(argument) && argument.expression.getText(source) === "Layer.provide" &&
          argument.arguments.length === 1
          ? [argument.arguments[0].getText(source)]
          : []
      )
      const server = provided.findIndex((layer) => serverPattern.test(layer))
      const store = provided.findIndex((layer) => storePattern.test(layer) && !serverPattern.test(layer))
      if (server >= 0 && store >= 0 && store < server) {
        const line = source.getLineAndCharacterOfPosition(node.getStart(source)).line
        problems.push(
          `${where(line)}: ${provided[store]} is provided before ${provided[server]}, so the server listens ` +
            "before the store is built and requests that arrive meanwhile hang: provide the store last"
        )
      }
    }
    ts.forEachChild(node, visit)
  }
  visit(source)
  return problems
}

// --- main --------------------------------------------------------------------

const problems: Array<string> = []
const skipped: Array<string> = []
const chains: Array<Array<Block>> = []
const mistakes: Array<{ readonly chain: ReadonlyArray<Block>; readonly error: string }> = []
let checkedBlocks = 0
for (const file of markdownFiles()) {
  let previous: Array<Block> | undefined
  for (const block of blocksOf(file)) {
    const where = `${relative(root, file)}:${block.line - 1}`
    if (["sh", "bash", "shell", "console"].includes(block.lang)) problems.push(...checkInstalls(block))
    if (!isTypeScript(block)) continue
    const marker = block.marker
    if (marker?._tag === "skip") {
      skipped.push(`${where}: ${marker.reason}`)
      continue
    }
    checkedBlocks++
    problems.push(...checkProvideOrder(block.code, (line) => `${relative(root, file)}:${block.line + line}`))
    if (marker?._tag === "file") {
      const path = join(root, marker.path)
      if (!existsSync(path)) problems.push(`${where}: ${marker.path} does not exist`)
      else if (readFileSync(path, "utf8").trimEnd() !== block.code.trimEnd()) {
        problems.push(`${where}: the block differs from ${marker.path}; keep them identical`)
      }
    }
    if (marker?._tag === "fails") {
      mistakes.push({ chain: [...(previous ?? []), block], error: marker.error })
      continue
    }
    if (marker?._tag === "continues") {
      if (previous === undefined) problems.push(`${where}: "continues", but no checked block comes before it`)
      else {
        previous.push(block)
        continue
      }
    }
    previous = [block]
    chains.push(previous)
  }
}

for (const name of readdirSync(join(root, "examples")).filter((name) => name.endsWith(".ts")).sort()) {
  const text = readFileSync(join(root, "examples", name), "utf8")
  problems.push(...checkProvideOrder(text, (line) => `examples/${name}:${line + 1}`))
}

problems.push(...typeCheck([
  ...chains.map((chain, i) => moduleOf(chain, i)),
  ...mistakes.map(({ chain, error }, i) => moduleOf(chain, chains.length + i, error))
]))

for (const line of skipped) console.log(`skipped (fragment) ${line}`)
if (problems.length > 0) {
  for (const problem of problems) console.error(problem)
  console.error(`\ndocs:check: ${problems.length} problem(s) in ${checkedBlocks} TypeScript blocks`)
  process.exit(1)
}
console.log(
  `docs:check: ${checkedBlocks} TypeScript blocks type-check (${chains.length} modules), ` +
    `${mistakes.length} deliberate mistakes fail as documented, ${skipped.length} skipped`
)
