#!/usr/bin/env bash
# Where a kernel's time goes on lavapipe/llvmpipe: samples a running
# `wgconv` with perf, disassembles the hottest JIT-compiled code with gdb
# (llvmpipe's machine code has no symbols, so perf alone shows bare
# addresses), and prints the share of time per library, the hottest loop of
# the JIT code and its instruction mix (spill loads and stores, blends with
# the execution mask, multiplies and adds, per-lane address extraction).
#
#   benches/profile-jit.sh OUT_DIR [wgconv args...]
#   benches/profile-jit.sh /tmp/pw bench --layer pw --runs 1000 --warmup 1000 --no-check
#
# The run must last longer than DELAY + SECS (defaults 3 s + 3 s; set them in
# the environment): the profile is taken mid-run, in the steady state, and gdb
# reads the code while the process is still alive. Needs perf, gdb and
# python3 (`apt-get install linux-perf gdb`), and a release build
# (`cargo build --release`; WGCONV overrides the binary).
set -euo pipefail
out=${1:?usage: profile-jit.sh OUT_DIR [wgconv args...]}
shift
mkdir -p "$out"
bin=${WGCONV:-$(dirname "$0")/../target/release/wgconv}
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}

"$bin" "$@" >"$out/run.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
sleep "${DELAY:-3}"
short="profile-jit: the run ended before the profile did; make it longer (see $out/run.log)"
kill -0 "$pid" 2>/dev/null || { echo "$short" >&2; exit 1; }
perf record -p "$pid" -o "$out/perf.data" -- sleep "${SECS:-3}" >"$out/perf.log" 2>&1 \
    || { echo "profile-jit: perf record failed (see $out/perf.log)" >&2; exit 1; }
kill -0 "$pid" 2>/dev/null || { echo "$short" >&2; exit 1; }
perf report -i "$out/perf.data" --sort dso --stdio 2>/dev/null | grep '%' >"$out/dso.txt" || true
perf script -i "$out/perf.data" -F ip,dso 2>/dev/null | grep -E 'JIT|perf-' | awk '{print $1}' >"$out/jit.ips" || true
[ -s "$out/jit.ips" ] || { echo "profile-jit: no samples in JIT code" >&2; exit 1; }
# The mapping that holds the hottest JIT address.
read -r lo hi < <(python3 - "$out/jit.ips" "/proc/$pid/maps" <<'PY'
import collections, sys
ips = collections.Counter(int(l, 16) for l in open(sys.argv[1]) if l.strip())
top = ips.most_common(1)[0][0]
for line in open(sys.argv[2]):
    a, b = (int(x, 16) for x in line.split()[0].split('-'))
    if a <= top < b:
        print(hex(a), hex(b))
PY
)
gdb -p "$pid" -batch -ex "x/$(( (hi - lo) / 4 ))i $lo" 2>/dev/null | grep '^ *0x' >"$out/jit.asm" || true
kill "$pid" 2>/dev/null || true

echo "time per library (perf samples):"
head -6 "$out/dso.txt"
python3 - "$out/jit.ips" "$out/jit.asm" <<'PY'
import collections, re, sys
ips = collections.Counter(int(l, 16) for l in open(sys.argv[1]) if l.strip())
code = []
for line in open(sys.argv[2]):
    m = re.match(r'\s*0x([0-9a-f]+)(?:\s*<[^>]*>)?:\s*(.*)', line)
    if m:
        code.append((int(m.group(1), 16), m.group(2)))
at = {a: i for i, (a, _) in enumerate(code)}
total = sum(ips[a] for a, _ in code)
# The loop (a backward jump) holding the most samples.
best = None
for i, (a, ins) in enumerate(code):
    m = re.match(r'j\w+\s+0x([0-9a-f]+)', ins)
    if m and int(m.group(1), 16) < a and int(m.group(1), 16) in at:
        j = at[int(m.group(1), 16)]
        s = sum(ips[x] for x, _ in code[j:i + 1])
        if best is None or s > best[0]:
            best = (s, j, i)
if best is None:
    sys.exit("no loop in the hottest mapping")
s, j, i = best
print(f"hottest loop: {i - j + 1} instructions, {100 * s / total:.1f} % of the mapping's samples")
def kind(ins):
    op = ins.split()[0]
    if re.match(r'v?mov\w*\s+%[xy]mm\d+,-?(0x[0-9a-f]+)?\(%r[sb]p', ins):
        return 'spill store'
    if re.search(r'\(%r[sb]p(,%\w+,\d)?\),%', ins):
        return op + ' (stack operand)'
    return op
count, samples = collections.Counter(), collections.Counter()
for a, ins in code[j:i + 1]:
    count[kind(ins)] += 1
    samples[kind(ins)] += ips[a]
print("  count  samples  instruction")
for k, n in count.most_common(20):
    print(f"  {n:5d}  {100 * samples[k] / max(s, 1):6.1f}%  {k}")
PY
