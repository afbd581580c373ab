#!/usr/bin/env bash
# How much WAL a big `zdel enqueue` leaves behind while another process
# keeps the database open (as a running daemon does).
# usage: bash bench/wal_after_enqueue.sh [ZDEL_BINARY] [IDS]
set -euo pipefail
zdel=${1:-target/release/zdel}
n=${2:-1000000}
d=$(mktemp -d)
trap 'kill "${holder:-}" 2>/dev/null || true; rm -rf "$d"' EXIT
db=$d/zdel.db
seq 1000000000000000000 $((1000000000000000000 + n)) > "$d/ids.txt"
ZDEL__DATABASE__URL=$db "$zdel" migrate >/dev/null 2>&1
python3 -c "
import sqlite3, sys, time
c = sqlite3.connect('$db')
c.execute('select count(*) from deletion_requests').fetchall()
print('ready', flush=True)
time.sleep(600)" > "$d/holder.out" &
holder=$!
until grep -q ready "$d/holder.out" 2>/dev/null; do sleep 0.1; done
ZDEL__DATABASE__URL=$db "$zdel" enqueue --module Leads --file "$d/ids.txt" >/dev/null 2>&1
echo "database $(stat -c %s "$db") bytes, WAL $(stat -c %s "$db-wal" 2>/dev/null || echo 0) bytes after enqueueing $((n + 1)) IDs"
