#!/usr/bin/env bash
# Instruction-count regression gate: counts the instructions of the core engine cases under
# valgrind (callgrind, no hardware counters needed) and compares them with the baselines
# committed in benches/baselines/instructions.json.
#
#   benches/instructions-gate.sh            build, run every case, compare; exit 1 on a regression
#   benches/instructions-gate.sh --update   build, run every case, rewrite the baseline file
#
# Each case is `ferrox-icount CASE` (benches/src/bin/ferrox-icount.rs): setup runs outside the
# counted region, and callgrind counts only inside the `icount_region_*` function
# (--toggle-collect), so the totals are exact and identical run to run for a given binary.
#
# A case fails when its count rises more than FERROX_ICOUNT_TOLERANCE_PCT percent (default 2)
# above its baseline; a fall beyond the tolerance is reported as an improvement, which passes.
# Counts depend on the code, the compiler (rustc version, release profile) and, slightly, on
# valgrind's version: after an intended change, or a toolchain update, rerun with --update and
# commit benches/baselines/instructions.json with the change that moved the numbers.
#
# Needs valgrind and python3 (both installed by .ci/run). The cases take ~5-10 s; a release build
# from a fresh clone adds ~2 min on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

update=0
case "${1:-}" in
    --update) update=1 ;;
    "") ;;
    -h | --help)
        sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "usage: $0 [--update]" >&2
        exit 2
        ;;
esac

baseline=benches/baselines/instructions.json
tolerance="${FERROX_ICOUNT_TOLERANCE_PCT:-2}"

for tool in valgrind python3; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "instructions-gate: $tool is missing (apt-get install $tool)" >&2
        exit 2
    fi
done

locked=()
if [ -n "${CI:-}" ]; then locked=(--locked); fi
cargo build --release -q "${locked[@]}" -p ferrox-benches --bin ferrox-icount
bin="${CARGO_TARGET_DIR:-target}/release/ferrox-icount"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

results="$work/results.tsv"
: >"$results"
for case in $("$bin" list); do
    if ! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        --toggle-collect='*icount_region_*' --log-file="$work/$case.log" \
        "$bin" "$case" >"$work/$case.out"; then
        echo "instructions-gate: case $case failed under valgrind:" >&2
        cat "$work/$case.out" "$work/$case.log" >&2
        exit 2
    fi
    ops=$(sed -n 's/^case=.* ops=\([0-9]*\)$/\1/p' "$work/$case.out")
    instructions=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$work/$case.log")
    if [ -z "$ops" ] || [ -z "$instructions" ] || [ "$instructions" = 0 ]; then
        echo "instructions-gate: no count for case $case (did the region get inlined away?)" >&2
        cat "$work/$case.out" "$work/$case.log" >&2
        exit 2
    fi
    printf '%s\t%s\t%s\n' "$case" "$ops" "$instructions" >>"$results"
done

rustc_version=$(rustc --version)
valgrind_version=$(valgrind --version)

python3 - "$results" "$baseline" "$tolerance" "$update" "$rustc_version" "$valgrind_version" <<'EOF'
import json, os, sys

results_path, baseline_path, tolerance, update, rustc, valgrind = sys.argv[1:]
tolerance = float(tolerance)
update = update == "1"

now = {}
for line in open(results_path):
    case, ops, instructions = line.rstrip("\n").split("\t")
    now[case] = {"ops": int(ops), "instructions": int(instructions)}

old = {}
old_toolchain = {}
if os.path.exists(baseline_path):
    with open(baseline_path) as f:
        data = json.load(f)
    old = data.get("cases", {})
    old_toolchain = data.get("toolchain", {})
elif not update:
    print(f"instructions-gate: no baseline file {baseline_path}; "
          "create it with benches/instructions-gate.sh --update")
    sys.exit(1)

def per_op(c):
    return c["instructions"] / c["ops"]

regressions, improvements, problems = [], [], []
rows = []
for case, c in now.items():
    b = old.get(case)
    if b is None:
        rows.append((case, str(c["ops"]), "-", f"{per_op(c):.1f}", "-", str(c["instructions"]), "NEW"))
        problems.append(f"{case}: no baseline")
        continue
    if b["ops"] != c["ops"]:
        rows.append((case, str(c["ops"]), f"{per_op(b):.1f}", f"{per_op(c):.1f}", "-",
                     str(c["instructions"]), "OPS CHANGED"))
        problems.append(f"{case}: the case now runs {c['ops']} operations, the baseline {b['ops']}")
        continue
    change = (c["instructions"] - b["instructions"]) * 100.0 / b["instructions"]
    if change > tolerance:
        status = "REGRESSION"
        regressions.append(f"{case}: {per_op(b):.1f} -> {per_op(c):.1f} instructions/op ({change:+.2f}%)")
    elif change < -tolerance:
        status = "improved"
        improvements.append(f"{case}: {per_op(b):.1f} -> {per_op(c):.1f} instructions/op ({change:+.2f}%)")
    else:
        status = "ok"
    rows.append((case, str(c["ops"]), f"{per_op(b):.1f}", f"{per_op(c):.1f}", f"{change:+.2f}%",
                 str(c["instructions"]), status))
for case in old:
    if case not in now:
        rows.append((case, str(old[case]["ops"]), f"{per_op(old[case]):.1f}", "-", "-", "-", "GONE"))
        problems.append(f"{case}: in the baseline but no longer a case")

header = ("case", "ops", "baseline/op", "now/op", "change", "now total", "status")
widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
def fmt(r):
    return "  ".join(v.ljust(w) if i in (0, 6) else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths)))
print(f"instruction counts (callgrind, instructions per operation; tolerance +{tolerance:g}%)")
print(fmt(header))
print("  ".join("-" * w for w in widths))
for r in rows:
    print(fmt(r))

toolchain = {"rustc": rustc, "valgrind": valgrind}
if old_toolchain and old_toolchain != toolchain:
    print(f"note: the baseline was recorded with {old_toolchain.get('rustc')} / "
          f"{old_toolchain.get('valgrind')}, this run used {rustc} / {valgrind}; "
          "a compiler change alone can move the counts")

if update:
    out = {
        "comment": "Instruction counts of the ferrox-icount cases (callgrind, counted region only). "
                   "Written by benches/instructions-gate.sh --update; checked by "
                   "benches/instructions-gate.sh.",
        "toolchain": toolchain,
        "cases": {case: {"ops": c["ops"], "instructions": c["instructions"],
                         "per_op": round(per_op(c), 1)} for case, c in now.items()},
    }
    os.makedirs(os.path.dirname(baseline_path), exist_ok=True)
    with open(baseline_path, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    print(f"instructions-gate: wrote {baseline_path}")
    sys.exit(0)

for line in improvements:
    print(f"improvement beyond the tolerance: {line}")
if improvements:
    print("  lock it in: benches/instructions-gate.sh --update, and commit "
          f"{baseline_path} with the change")
if regressions or problems:
    for line in regressions:
        print(f"REGRESSION: {line}")
    for line in problems:
        print(f"BASELINE MISMATCH: {line}")
    print("instructions-gate: FAILED. If the increase is intended (or the toolchain changed), run "
          f"benches/instructions-gate.sh --update and commit {baseline_path}; the tolerance is "
          "FERROX_ICOUNT_TOLERANCE_PCT (percent, default 2).")
    sys.exit(1)
print(f"instructions-gate: passed ({len(now)} cases within +{tolerance:g}% of the baseline)")
EOF
