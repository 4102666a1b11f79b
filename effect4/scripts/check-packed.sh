#!/usr/bin/env bash
# Checks the package as npm would publish it, after `npm run build`: packs it,
# unpacks the tarball into node_modules/ of a project of its own outside this
# directory, and there
#   - loads every module of "exports" by the package's name, on this line's
#     Node, and checks a few of what they export (Session.Tag, the index's
#     Session, MemoryStore.layer, FileSystemStore.layer, RedisStore.layer);
#   - type-checks a module that imports every one of them, the .d.ts files
#     included (skipLibCheck off);
#   - finds no import of the repository's src/core/ left in a .js or .d.ts.
# So the files the package ships are all it needs: the core is inside dist/.
# Offline: effect, @types/node and the client libraries are linked from this
# directory's node_modules instead of installed.
set -euo pipefail
cd "$(dirname "$0")/.."
here=$PWD
node="$here/node_modules/.bin/node"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# dist/ is built by the step before: pack it as it is.
tarball=$(npm pack --ignore-scripts --json --pack-destination "$work" \
  | "$node" -e 'let s="";process.stdin.on("data",(d)=>s+=d).on("end",()=>console.log(JSON.parse(s)[0].filename))')
name=$("$node" -p 'require("./package.json").name')

project="$work/project"
mkdir -p "$project/node_modules/$name"
tar -xzf "$work/$tarball" -C "$project/node_modules/$name" --strip-components=1
echo '{ "name": "packed-check", "private": true, "type": "module" }' > "$project/package.json"

for dependency in $("$node" -p 'const p = require("./package.json"); [...Object.keys(p.peerDependencies), "@types/node"].join(" ")'); do
  mkdir -p "$(dirname "$project/node_modules/$dependency")"
  ln -s "$here/node_modules/$dependency" "$project/node_modules/$dependency"
done

# A relative path through src/core/, or two levels up from dist/ (out of it).
if grep -rlE --include='*.js' --include='*.d.ts' "[\"'](\.\.?/)+src/core/|[\"']\.\./\.\./" "$project/node_modules/$name"; then
  echo "the packed files above import the repository's src/core/ instead of dist/core/" >&2
  exit 1
fi

cd "$project"
PACKAGE="$name" "$node" --input-type=module --disable-warning=ExperimentalWarning -e '
  import { readFileSync } from "node:fs"
  const name = process.env.PACKAGE
  const { exports } = JSON.parse(readFileSync(`node_modules/${name}/package.json`, "utf8"))
  const modules = {}
  for (const subpath of Object.keys(exports).filter((subpath) => subpath !== "./package.json")) {
    modules[subpath] = await import(name + subpath.slice(1))
  }
  const checks = {
    "Session.Tag": typeof modules["./Session"].Tag === "function",
    "the index'"'"'s Session": modules["."].Session === modules["./Session"],
    "MemoryStore.layer": typeof modules["./MemoryStore"].layer === "function",
    "FileSystemStore.layer": typeof modules["./FileSystemStore"].layer === "function",
    "RedisStore.layer": typeof modules["./RedisStore"].layer === "function"
  }
  const failed = Object.entries(checks).filter(([, ok]) => !ok).map(([what]) => what)
  if (failed.length > 0) {
    console.error(`packed package: wrong or missing ${failed.join(", ")}`)
    process.exit(1)
  }
  console.log(`packed package: ${Object.keys(modules).length} modules load by name`)
'

"$node" -e '
  const { exports } = require(`./node_modules/${process.argv[1]}/package.json`)
  const subpaths = Object.keys(exports).filter((subpath) => subpath !== "./package.json")
  const lines = subpaths.map((subpath, i) => `import * as M${i} from "${process.argv[1]}${subpath.slice(1)}"`)
  lines.push(`export const modules = [${subpaths.map((_, i) => `M${i}`).join(", ")}]`)
  require("node:fs").writeFileSync("check.ts", lines.join("\n") + "\n")
' "$name"
cat > tsconfig.json <<'EOF'
{
  "compilerOptions": {
    "target": "ES2022",
    "module": "NodeNext",
    "moduleResolution": "NodeNext",
    "lib": ["ES2022", "DOM"],
    "types": ["node"],
    "strict": true,
    "exactOptionalPropertyTypes": true,
    "skipLibCheck": false,
    "noEmit": true
  },
  "files": ["check.ts"]
}
EOF
"$node" "$here/node_modules/typescript/bin/tsc" -p tsconfig.json
echo "packed package: its types resolve and its .d.ts files type-check"
