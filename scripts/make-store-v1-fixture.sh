#!/bin/sh
# Makes tests/fixtures/store-v1.tar.gz: two node homes (g22 = 000.00.00.G22, h41 = 000.00.00.H41)
# and their dev CA, written by the vdx release BEFORE tenants (store format 1, commit 8f97d44),
# after g22 sent two dispatches to h41 (one hỏa tốc) and got their receipts. The tenants test
# (tests/tests/tenants.rs) opens them with today's code: the store is migrated on open.
#
# Run it from a checkout of that release, after `cargo build --bins`:
#   git worktree add /tmp/v1 8f97d44 && cd /tmp/v1 && cargo build --bins && sh scripts/make-store-v1-fixture.sh
# (with today's code it would make a format-2 store, which is not what the fixture is for).
set -eu
bin=${VDX_BIN_DIR:-target/debug}
out=$(pwd)/tests/fixtures/store-v1.tar.gz
work=$(mktemp -d)
trap 'kill $pg $ph 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"
vdx() { "$OLDPWD/$bin/vdx" "$@"; }
vdx pki init-ca --out ca --name Root >/dev/null
vdx --home g22 init --org 000.00.00.G22 --name "Văn phòng Chính phủ" --listen 127.0.0.1:47101 --ca ca >/dev/null
vdx --home h41 init --org 000.00.00.H41 --name "UBND tỉnh Nghệ An" --listen 127.0.0.1:47102 --ca ca >/dev/null
vdx --home g22 directory export > g22.json
vdx --home h41 directory export > h41.json
vdx --home g22 directory import h41.json >/dev/null
vdx --home h41 directory import g22.json >/dev/null
"$OLDPWD/$bin/vdxd" --home h41 2>h41.log & ph=$!
"$OLDPWD/$bin/vdxd" --home g22 2>g22.log & pg=$!
sleep 2
printf 'Kính gửi: UBND tỉnh Nghệ An\n' > cv.txt
vdx --home g22 send --to 000.00.00.H41 --subject "V/v kiểm thử" --number 1 --notation VPCP-TTĐT --urgency thuong cv.txt
vdx --home g22 send --to 000.00.00.H41 --subject "V/v hỏa tốc" --number 2 --notation VPCP-TTĐT --urgency hoa-toc cv.txt
for _ in $(seq 1 60); do
  if [ "$(vdx --home g22 outbox | grep -c " delivered ")" -ge 2 ]; then break; fi
  sleep 1
done
vdx --home g22 outbox
vdx --home h41 inbox
kill $pg $ph; wait $pg $ph 2>/dev/null || true
rm -f g22/vdx.sock h41/vdx.sock
tar czf "$out" ca g22 h41
echo "wrote $out"
