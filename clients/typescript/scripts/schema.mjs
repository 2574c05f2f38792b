// Writes src/schema.d.ts from the committed API description, or, with
// --check, writes it to a temporary file and fails when the committed copy
// differs. Both modes run the same openapi-typescript command, so the check
// compares like with like.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const project = dirname(dirname(fileURLToPath(import.meta.url)));
const description = join(project, "..", "..", "docs", "openapi.json");
const committed = join(project, "src", "schema.d.ts");
const cli = join(project, "node_modules", "openapi-typescript", "bin", "cli.js");
const show = (path) => relative(process.cwd(), path) || ".";

function generate(output) {
  // --check is this script's flag, not the CLI's: the CLI always writes.
  const run = spawnSync(process.execPath, [cli, description, "--output", output], {
    cwd: project,
    encoding: "utf8",
  });
  if (run.status !== 0) {
    process.stderr.write(run.stdout + run.stderr);
    process.exit(run.status ?? 1);
  }
}

if (!process.argv.includes("--check")) {
  generate(committed);
  console.log(`wrote ${show(committed)} from ${show(description)}`);
  process.exit(0);
}

const scratch = mkdtempSync(join(tmpdir(), "todo-api-schema-"));
try {
  const fresh = join(scratch, "schema.d.ts");
  generate(fresh);
  if (readFileSync(fresh, "utf8") === readFileSync(committed, "utf8")) {
    console.log(`${show(committed)} matches ${show(description)}`);
  } else {
    console.error(`${show(committed)} is stale: it no longer matches ${show(description)}.`);
    // A unified diff helps whoever reads the CI log; it is only a courtesy.
    spawnSync("diff", ["-u", committed, fresh], { stdio: "inherit" });
    console.error("Run `npm run generate` in clients/typescript and commit the result.");
    process.exitCode = 1;
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
