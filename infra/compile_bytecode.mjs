// Writes __pycache__/*.pyc for every module under each directory, with Pyodide: CPython compiled to WebAssembly,
// run offline by Node. The bytecode is the same on every machine that synthesizes, whatever Python it has.
//
// Usage: node infra/compile_bytecode.mjs <major.minor> <directory>...
// Fails unless Pyodide's Python is <major.minor>. Prints nothing on success; exits non-zero if a module fails to
// compile (compileall prints which).
import { statSync } from "node:fs";
import path from "node:path";

function fail(message, code = 1) {
  process.stderr.write(`compile_bytecode: ${message}\n`);
  process.exit(code);
}

const [version, ...directories] = process.argv.slice(2);
if (!/^\d+\.\d+$/.test(version ?? "") || directories.length === 0) {
  fail("usage: node compile_bytecode.mjs <major.minor> <directory>...", 2);
}
const roots = directories.map((directory) => path.resolve(directory));
for (const root of roots) {
  if (!statSync(root, { throwIfNoEntry: false })?.isDirectory()) fail(`not a directory: ${root}`, 2);
}

let loadPyodide;
try {
  ({ loadPyodide } = await import("pyodide"));
} catch (error) {
  fail(`cannot load the pyodide npm package (run \`npm ci\`): ${error.message}`);
}
const pyodide = await loadPyodide();

const compileTrees = pyodide.runPython(`
import compileall, py_compile, sys

def compile_trees(version, mounts):
    actual = "%d.%d" % sys.version_info[:2]
    if actual != version:
        return f"Pyodide runs Python {actual}, but bytecode for Python {version} was asked for"
    for mount in mounts:
        # Unchecked hashes: CDK zips assets with a fixed timestamp, so timestamp-checked .pyc would never be used.
        # stripdir: co_filename is relative to the tree, not to where this script mounted it.
        if not compileall.compile_dir(
            mount,
            quiet=1,
            stripdir=mount,
            workers=1,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        ):
            return f"some modules failed to compile under {mount}"
    return None

compile_trees
`);

const mounts = roots.map((root, index) => {
  const mount = `/compile/${index}`;
  pyodide.FS.mkdirTree(mount);
  pyodide.FS.mount(pyodide.FS.filesystems.NODEFS, { root }, mount);
  return mount;
});
const error = compileTrees(version, pyodide.toPy(mounts));
if (error) fail(error.replace(/\/compile\/(\d+)/, (_, index) => roots[Number(index)]));
