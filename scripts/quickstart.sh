#!/usr/bin/env bash
# The main job on embedded defaults: create a demo trading target, back it up, verify the
# backup fully, extract it and prove the extracted copy equals the source; then run it live
# and drill every disaster of the runbook against it (full-simulation), printing the
# measured RTO/RPO table and writing the HTML report.
set -euo pipefail
cd "$(dirname "$0")/.."

demo="${LIFEBOAT_DEMO_DIR:-.lifeboat/quickstart}"
size="${LIFEBOAT_DEMO_SIZE:-10MiB}"
lifeboat() { node apps/cli/bin/lifeboat.js "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

free_port() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

if [ -f "$demo/lifeboat.yaml" ]; then lifeboat demo stop --config "$demo/lifeboat.yaml" >/dev/null 2>&1 || true; fi
rm -rf "$demo"
port=$(free_port)
exchange_port=$(free_port)
step "1. create a demo target ($size) in $demo"
lifeboat demo init "$demo" --size "$size" --port "$port" --exchange-port "$exchange_port"
config="$demo/lifeboat.yaml"

step "2. back it up"
lifeboat backup --config "$config" --reason quickstart

step "3. the catalog"
lifeboat backups list --config "$config"

step "4. verify it fully (decrypt, every checksum, database integrity)"
lifeboat verify latest --full --config "$config"

step "5. extract it"
lifeboat extract latest --to "$demo/restored" --config "$config"

step "6. compare the extracted copy with the source"
# A SQLite backup copies every page but renumbers three header counters, so the database
# is compared by content (its full SQL dump); every other file byte for byte.
diff -r --exclude=trading.db "$demo/target" "$demo/restored"
echo "every other file is byte-identical to the source ($(find "$demo/restored" -type f ! -name trading.db | wc -l) files)"
cmp <(sqlite3 "$demo/target/trading.db" .dump) <(sqlite3 "$demo/restored/trading.db" .dump)
echo "trading.db: the same schema and rows as the source (sqlite3 .dump is identical)"
integrity=$(sqlite3 "$demo/restored/trading.db" 'PRAGMA integrity_check;')
echo "integrity_check of the extracted database: $integrity"
[ "$integrity" = ok ]
lifeboat backups list --json --config "$config" | node -e '
  const { execFileSync } = require("node:child_process");
  const list = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
  const tables = list.backups.at(-1).database.tables;
  for (const [table, rows] of Object.entries(tables)) {
    const got = Number(execFileSync("sqlite3", [process.argv[1], `SELECT COUNT(*) FROM ${table};`]).toString());
    console.log(`  ${table}: ${got} rows (manifest: ${rows})`);
    if (got !== rows) { console.error(`row count of ${table} differs from the manifest`); process.exit(1); }
  }' "$demo/restored/trading.db"

step "7. run it: the paper-trader trading live against its simulated exchange"
lifeboat demo start --detach --config "$config" --exchange-port "$exchange_port"
trap 'lifeboat demo stop --config "$config" >/dev/null 2>&1 || true' EXIT
sleep 2
lifeboat backup --config "$config" --reason "before the drills"

step "8. drill every disaster of the runbook against it (full-simulation, in sandboxes)"
lifeboat drill run full-simulation --config "$config" --html "$demo/drill-report.html"

printf '\nquickstart passed: backup verified, extracted copy identical, every drill within its targets.\n'
printf 'The HTML report: %s. Try: lifeboat --help\n' "$demo/drill-report.html"
printf 'The dashboard of these drills: npx lifeboat console --config %s (it prints a sign-in token)\n' "$config"
