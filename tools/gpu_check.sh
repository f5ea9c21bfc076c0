#!/usr/bin/env bash
# tools/gpu_check.sh: the GPU check of sagitta on a machine with nothing prepared (no network, no
# Rust toolchain: a prebuilt binary), in one run of a few minutes:
#
#   1. environment (nvidia-smi, python, torch, CUDA) and the Vulkan loader: when libvulkan is
#      missing and the repository has a .gl/ folder of .deb files (libvulkan1, libglvnd ...), they
#      are unpacked (dpkg -x into /, ldconfig; or, without root, into a private folder on
#      LD_LIBRARY_PATH); when no NVIDIA ICD is in the loader's folders, VK_DRIVER_FILES points at
#      the first nvidia_icd*.json found (/usr/local/nvidia/share/vulkan/icd.d, /usr/share/..., /etc/...);
#   2. `sagitta info` (is the NVIDIA adapter there, on Vulkan?);
#   3. the tensor-core self-check: `SAGITTA_COOPERATIVE_MATRIX=on sagitta info` runs the
#      cooperative-matrix convolution against the scalar one on a test layer;
#   4. `sagitta analyze samples/phantom_dicom.dcm` in f32, f16, and f16 with tensor cores, each
#      compared with tools/gpu_check_reference.json (the same run on lavapipe, f32);
#   5. `sagitta tune` for each model family (cervical, csm, wholespine, lumbar) at paper size (random paper weights
#      made by the binary itself: no weights file to carry);
#   6. `sagitta bench --kernels` for each family at paper size: f32, f16 and f16 with tensor cores
#      allowed (SAGITTA_COOPERATIVE_MATRIX=on) with `--torch`: PyTorch on CUDA (tools/bench_torch.py
#      on the same weights and image, under autocast(float16) for f16); for cervical also f16 with
#      every convolution on the tiled kernel, with and without tensor cores.
#
# Every step runs under `timeout` (and within an overall budget, default 420 s) and the run goes on
# after a failing one; each step's status, exit code and seconds go into the results.
# Writes into OUTDIR ($OUT when set, else --out DIR, else ./gpu_check_out):
#   results.json   every step, the environment, info, tensor cores, analyze differences, tuning
#                  tables and the full `sagitta bench --out` JSON of every run
#   results.md     the same as tables
#   tuning.json    the table `sagitta tune` wrote (used by the benches)
#   logs/          each step's stdout (.out) and stderr (.err), each bench's JSON
# Progress lines start with "+ [HH:MM:SS  +Ns]" so a cut log still shows where the run got to.
#
#   tools/gpu_check.sh [--small] [--out DIR] [--budget SECONDS]
#   SAGITTA_BIN=.gpu/sagitta SAGITTA_PYTHON=python3 SAGITTA_GIT_COMMIT=abc123 tools/gpu_check.sh
#
# --small (or SAGITTA_GPU_CHECK_SMALL=1): the small test models of tests/fixtures at a 300x250
# image and few runs instead of the paper's models at 1200x1000: proves the flow in about 3 minutes
# on lavapipe with PyTorch on 2 CPU cores. Without --small, a CPU rasteriser as the chosen adapter
# skips tune and bench (SAGITTA_GPU_CHECK_FORCE=1 runs them anyway).

set -u -o pipefail

SMALL=${SAGITTA_GPU_CHECK_SMALL:-0}
OUTDIR=${OUT:-}
BUDGET=${SAGITTA_GPU_CHECK_BUDGET:-420}
while [ $# -gt 0 ]; do
    case "$1" in
        --small) SMALL=1 ;;
        --out) OUTDIR=$2; shift ;;
        --budget) BUDGET=$2; shift ;;
        -h|--help) sed -n '2,38p' "$0"; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2
OUTDIR=${OUTDIR:-$ROOT/gpu_check_out}
mkdir -p "$OUTDIR/logs" || exit 2
OUTDIR=$(cd "$OUTDIR" && pwd)
LOGS=$OUTDIR/logs
STEPS=$OUTDIR/logs/steps.tsv
: >"$STEPS"
WORK=$(mktemp -d /tmp/sagitta-gpu-check.XXXXXX)
START=$(date +%s.%N)

log() { printf '+ [%s %+5ds] %s\n' "$(date -u +%H:%M:%S)" "$SECONDS" "$*"; }

# run_step NAME TIMEOUT_S COMMAND...: stdout to logs/NAME.out, stderr to logs/NAME.err, a row in
# steps.tsv (name, status ok|failed|timeout|skipped, exit code, seconds, limit, command).
run_step() {
    local name=$1 limit=$2
    shift 2
    local left=$((BUDGET - SECONDS))
    if [ "$left" -lt 20 ]; then
        log "SKIP $name: the ${BUDGET} s budget is spent"
        printf '%s\tskipped\t\t0\t0\t%s\n' "$name" "$*" >>"$STEPS"
        return 0
    fi
    [ "$limit" -gt $((left - 10)) ] && limit=$((left - 10))
    log "BEGIN $name (timeout ${limit}s): $*"
    local t0 t1 rc status
    t0=$(date +%s.%N)
    timeout -k 5 "$limit" "$@" >"$LOGS/$name.out" 2>"$LOGS/$name.err" </dev/null
    rc=$?
    t1=$(date +%s.%N)
    case $rc in
        0) status=ok ;;
        124|137) status=timeout ;;
        *) status=failed ;;
    esac
    local secs
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$rc" "$secs" "$limit" "$*" >>"$STEPS"
    log "END $name: $status (exit $rc) in ${secs}s"
    # The last lines, so a log read from afar shows what happened.
    tail -n 4 "$LOGS/$name.out" | sed 's/^/    | /'
    [ "$status" != ok ] && tail -n 4 "$LOGS/$name.err" | sed 's/^/    ! /'
    return 0
}

log "gpu_check.sh in $ROOT, output $OUTDIR, small=$SMALL, budget ${BUDGET}s"

# --- the binary and the interpreter ------------------------------------------------------------
BIN=${SAGITTA_BIN:-}
if [ -z "$BIN" ]; then
    for b in .gpu/sagitta target/release/sagitta; do
        [ -x "$b" ] && BIN=$ROOT/$b && break
    done
fi
[ -n "$BIN" ] && [ "${BIN#/}" = "$BIN" ] && BIN=$ROOT/$BIN
PY=${SAGITTA_PYTHON:-python3}
export SAGITTA_PYTHON=$PY
log "binary: ${BIN:-none found}; python: $PY"

# --- environment -------------------------------------------------------------------------------
run_step env_nvidia_smi 30 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
run_step env_python 60 "$PY" -c 'import sys, torch; c = torch.cuda.is_available(); print(f"python={sys.version.split()[0]}\ntorch={torch.__version__}\ncuda={c}\ncuda_device={torch.cuda.get_device_name() if c else None}\ncuda_runtime={torch.version.cuda}\nthreads={torch.get_num_threads()}")'

# --- the Vulkan loader and the NVIDIA ICD --------------------------------------------------------
have_lib() {
    local extra=${LD_LIBRARY_PATH:-}
    ldconfig -p 2>/dev/null | grep -q "$1" && return 0
    for d in /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib /lib/x86_64-linux-gnu ${extra//:/ }; do
        [ -e "$d/$1" ] && return 0
    done
    return 1
}
# The loader, and the GL dispatch libraries the NVIDIA ICD (libGLX_nvidia) links against.
have_vulkan() { have_lib libvulkan.so.1 && have_lib libGLdispatch.so.0 && have_lib libGLX.so.0; }
VULKAN_SETUP="loader and libglvnd present"
if ! have_vulkan; then
    if ls .gl/*.deb >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ] && command -v dpkg >/dev/null; then
            log "libvulkan.so.1 / libGLdispatch.so.0 / libGLX.so.0 missing: unpacking .gl/*.deb into / (dpkg -x), ldconfig"
            for f in .gl/*.deb; do dpkg -x "$f" / || log "dpkg -x $f failed"; done
            ldconfig
            VULKAN_SETUP="unpacked .gl/*.deb into /"
        else
            log "libvulkan or libglvnd missing and not root: unpacking .gl/*.deb into $WORK/gl"
            for f in .gl/*.deb; do
                if command -v dpkg >/dev/null; then
                    dpkg -x "$f" "$WORK/gl"
                else
                    (mkdir -p "$WORK/deb" && cd "$WORK/deb" && ar x "$ROOT/$f" && tar -xf data.tar.* -C "$WORK/gl" 2>/dev/null || mkdir -p "$WORK/gl"; rm -f "$WORK"/deb/*)
                fi
            done
            export LD_LIBRARY_PATH="$WORK/gl/usr/lib/x86_64-linux-gnu:$WORK/gl/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
            VULKAN_SETUP="unpacked .gl/*.deb into $WORK/gl (LD_LIBRARY_PATH)"
        fi
        have_vulkan || VULKAN_SETUP="$VULKAN_SETUP, still missing libvulkan.so.1 or libglvnd"
    else
        VULKAN_SETUP="libvulkan.so.1 or libglvnd missing and no .gl/*.deb to unpack"
    fi
fi
log "vulkan loader: $VULKAN_SETUP"
ICD=""
for f in /usr/share/vulkan/icd.d/nvidia_icd*.json /etc/vulkan/icd.d/nvidia_icd*.json \
         /usr/local/share/vulkan/icd.d/nvidia_icd*.json; do
    [ -e "$f" ] && ICD="$f (in the loader's folders)" && break
done
if [ -z "$ICD" ] && [ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ]; then
    for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd*.json /usr/local/nvidia/icd.d/nvidia_icd*.json \
             /usr/lib/x86_64-linux-gnu/nvidia/*/nvidia_icd*.json /opt/nvidia/*/nvidia_icd*.json; do
        if [ -e "$f" ]; then
            export VK_DRIVER_FILES=$f VK_ICD_FILENAMES=$f
            ICD="$f (VK_DRIVER_FILES)"
            break
        fi
    done
fi
[ -z "$ICD" ] && ICD="none found${VK_DRIVER_FILES:+; VK_DRIVER_FILES=$VK_DRIVER_FILES given}"
log "NVIDIA Vulkan ICD: $ICD"

# Caches of this run only; the tuning table comes back with the results.
export SAGITTA_PIPELINE_CACHE=$WORK/pipeline-cache
export SAGITTA_TUNING=$OUTDIR/tuning.json
rm -f "$SAGITTA_TUNING"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}

if [ -z "$BIN" ] || [ ! -x "$BIN" ]; then
    log "no sagitta binary (SAGITTA_BIN, .gpu/sagitta, target/release/sagitta): only the environment is recorded"
    printf '%s\tfailed\t127\t0\t0\t%s\n' "binary" "no sagitta binary found" >>"$STEPS"
else
    # --- info and the tensor-core self-check -------------------------------------------------
    run_step info 60 "$BIN" info
    if [ "$SMALL" != 1 ] && ! grep -qi 'nvidia' "$LOGS/info.out" 2>/dev/null; then
        # No NVIDIA adapter: try each NVIDIA ICD file found (a file in the loader's folders may
        # name a library this container lacks while another one works).
        for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd*.json /usr/share/vulkan/icd.d/nvidia_icd*.json \
                 /etc/vulkan/icd.d/nvidia_icd*.json /usr/local/share/vulkan/icd.d/nvidia_icd*.json; do
            [ -e "$f" ] && [ "${VK_DRIVER_FILES:-}" != "$f" ] || continue
            log "no NVIDIA adapter in sagitta info: retrying with VK_DRIVER_FILES=$f"
            run_step info_retry 60 env VK_DRIVER_FILES="$f" VK_ICD_FILENAMES="$f" "$BIN" info
            if grep -qi 'nvidia' "$LOGS/info_retry.out" 2>/dev/null; then
                export VK_DRIVER_FILES=$f VK_ICD_FILENAMES=$f
                ICD="$f (VK_DRIVER_FILES, after a retry)"
                break
            fi
            sed -i '$d' "$STEPS"   # only the last retry stays in the table
        done
    fi
    INFO_OUT=$LOGS/info.out
    [ -s "$LOGS/info_retry.out" ] && grep -qi nvidia "$LOGS/info_retry.out" && INFO_OUT=$LOGS/info_retry.out
    if grep -qi 'nvidia.*Vulkan' "$INFO_OUT" 2>/dev/null && ! grep -qi '^chosen:.*nvidia.*vulkan' "$INFO_OUT"; then
        log "an NVIDIA Vulkan adapter is listed but not chosen: SAGITTA_BACKEND=vulkan SAGITTA_ADAPTER=NVIDIA from now on"
        export SAGITTA_BACKEND=vulkan SAGITTA_ADAPTER=NVIDIA
        run_step info_nvidia 60 "$BIN" info
    fi
    # A software rasteriser at paper size would only burn the budget in timeouts.
    PAPER_OK=1
    if [ "$SMALL" != 1 ] && grep -q '^chosen:.*, Cpu,' "$INFO_OUT" 2>/dev/null && [ "${SAGITTA_GPU_CHECK_FORCE:-0}" != 1 ]; then
        log "the chosen adapter is a CPU rasteriser: the paper-size tune and bench steps are skipped (SAGITTA_GPU_CHECK_FORCE=1 runs them)"
        PAPER_OK=0
        printf '%s\tskipped\t\t0\t0\t%s\n' "paper_size" "tune and bench: the chosen adapter is a CPU rasteriser" >>"$STEPS"
    fi
    run_step tensor_cores 120 env SAGITTA_COOPERATIVE_MATRIX=on "$BIN" info

    # --- correctness on a real model: one radiograph, f32 / f16 / f16 on tensor cores ---------
    run_step analyze_f32 60 "$BIN" analyze samples/phantom_dicom.dcm
    run_step analyze_f16 60 "$BIN" analyze samples/phantom_dicom.dcm --precision f16
    run_step analyze_f16_tc 60 env SAGITTA_COOPERATIVE_MATRIX=on SAGITTA_CONV_ALGORITHM=tiled "$BIN" analyze samples/phantom_dicom.dcm --precision f16

    # --- tune and bench, per family ----------------------------------------------------------
    if [ "$SMALL" = 1 ]; then
        IMAGE=300x250 RUNS=3 WARMUP=1
        src() { echo "--weights tests/fixtures/${1}_small_f32.safetensors"; }
        TUNE_EXTRA="--repeats 1 --samples 1"
    else
        IMAGE=1200x1000 RUNS=20 WARMUP=3
        src() { echo "--model $1"; }
        TUNE_EXTRA=""
    fi
    # shellcheck disable=SC2046,SC2086
    [ "$PAPER_OK" = 1 ] && for family in cervical csm wholespine lumbar; do
        run_step "tune_$family" 120 "$BIN" tune $(src $family) --image $IMAGE $TUNE_EXTRA
    done
    # name, family, precision, environment (comma-separated, - for none), PyTorch side or not;
    # in order of importance (the budget may cut the last ones). _tc: tensor cores allowed (they
    # replace the tiled kernel, so after tuning only where tiled won); _tiled: every convolution
    # on the tiled kernel, i.e. with _tc every convolution on tensor cores.
    [ "$PAPER_OK" = 1 ] && for spec in "cervical_f32 cervical f32 - torch" \
                "cervical_f16 cervical f16 - torch" \
                "cervical_f16_tc cervical f16 SAGITTA_COOPERATIVE_MATRIX=on torch" \
                "cervical_f16_tiled_tc cervical f16 SAGITTA_CONV_ALGORITHM=tiled,SAGITTA_COOPERATIVE_MATRIX=on -" \
                "csm_f32 csm f32 - torch" \
                "csm_f16 csm f16 - torch" \
                "csm_f16_tc csm f16 SAGITTA_COOPERATIVE_MATRIX=on torch" \
                "wholespine_f32 wholespine f32 - torch" \
                "wholespine_f16 wholespine f16 - torch" \
                "lumbar_f32 lumbar f32 - torch" \
                "lumbar_f16 lumbar f16 - torch" \
                "cervical_f16_tiled cervical f16 SAGITTA_CONV_ALGORITHM=tiled -"; do
        read -r name family precision envs torch <<<"$spec"
        extra=()
        [ "$torch" = torch ] && extra+=(--torch)
        vars=(SAGITTA_COOPERATIVE_MATRIX=off)
        [ "$envs" != - ] && IFS=, read -r -a more <<<"$envs" && vars+=("${more[@]}")
        # shellcheck disable=SC2046
        run_step "bench_$name" 150 env "${vars[@]}" \
            "$BIN" bench $(src "$family") --image $IMAGE --runs $RUNS --warmup $WARMUP \
            --precision "$precision" --kernels "${extra[@]}" --out "$LOGS/bench_$name.json"
    done
fi

# --- results.json and results.md -----------------------------------------------------------------
log "writing $OUTDIR/results.json and results.md"
REPORT_PY=python3
command -v "$PY" >/dev/null && REPORT_PY=$PY
GPU_CHECK_SMALL=$SMALL GPU_CHECK_VULKAN="$VULKAN_SETUP" GPU_CHECK_ICD="$ICD" GPU_CHECK_BIN="${BIN:-}" \
GPU_CHECK_START="$START" GPU_CHECK_BUDGET="$BUDGET" \
timeout 60 "$REPORT_PY" - "$OUTDIR" <<'PYEOF'
import json, math, os, re, subprocess, sys, time

out = sys.argv[1]
logs = os.path.join(out, "logs")


def read(path, default=""):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return default


def tail(text, n=15):
    return "\n".join(text.rstrip("\n").splitlines()[-n:])


steps = []
for line in read(os.path.join(logs, "steps.tsv")).splitlines():
    f = line.split("\t")
    if len(f) < 6:
        continue
    name, status, rc, secs, limit, cmd = f[:6]
    step = {"name": name, "status": status, "exit_code": int(rc) if rc.lstrip("-").isdigit() else None,
            "seconds": float(secs), "timeout_s": int(limit), "command": cmd}
    if status != "ok":
        step["stderr_tail"] = tail(read(os.path.join(logs, name + ".err")))
        step["stdout_tail"] = tail(read(os.path.join(logs, name + ".out")), 5)
    steps.append(step)
by_name = {s["name"]: s for s in steps}


def ok(name):
    return by_name.get(name, {}).get("status") == "ok"


git = os.environ.get("SAGITTA_GIT_COMMIT", "")
if not git:
    try:
        git = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10).stdout.strip()
    except Exception:
        pass
binary_sha256 = None
if os.environ.get("GPU_CHECK_BIN"):
    try:
        import hashlib
        with open(os.environ["GPU_CHECK_BIN"], "rb") as f:
            binary_sha256 = hashlib.sha256(f.read()).hexdigest()
    except OSError:
        pass
results = {
    "tool": "tools/gpu_check.sh",
    "small": os.environ.get("GPU_CHECK_SMALL") == "1",
    "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "wall_s": round(time.time() - float(os.environ.get("GPU_CHECK_START", time.time())), 1),
    "budget_s": int(os.environ.get("GPU_CHECK_BUDGET", "0")),
    "git_commit": git or None,
    "binary": os.environ.get("GPU_CHECK_BIN") or None,
    "binary_sha256": binary_sha256,
    "vulkan_loader": os.environ.get("GPU_CHECK_VULKAN"),
    "nvidia_icd": os.environ.get("GPU_CHECK_ICD"),
    "steps": steps,
}

# Environment.
results["nvidia_smi"] = read(os.path.join(logs, "env_nvidia_smi.out")).strip() or None
results["python"] = dict(
    (k.strip(), v.strip()) for k, _, v in
    (l.partition("=") for l in read(os.path.join(logs, "env_python.out")).splitlines()) if k)

# sagitta info.
info_name = next((n for n in ("info_nvidia", "info_retry", "info") if ok(n) and
                  (n == "info" or "nvidia" in read(os.path.join(logs, n + ".out")).lower())), "info")
info_text = read(os.path.join(logs, info_name + ".out"))
chosen = re.search(r"^chosen: (.*)$", info_text, re.M)
adapters = re.findall(r"^  - (.*)$", info_text, re.M)
features = dict(re.findall(r"^  ([a-z0-9 -]+):\s+(yes|no)$", info_text, re.M))
results["info"] = {
    "status": by_name.get(info_name, {}).get("status"),
    "adapters": adapters,
    "chosen": chosen.group(1) if chosen else None,
    "nvidia_on_vulkan": bool(chosen and re.search(r"nvidia", chosen.group(1), re.I)
                             and re.search(r"vulkan", chosen.group(1), re.I)),
    "features": features,
    "output": info_text,
}
tc_text = read(os.path.join(logs, "tensor_cores.out"))
tc = re.search(r"^tensor-core convolution: (.*)$", tc_text, re.M)
coop_feature = re.search(r"^  cooperative matrix:\s+(yes|no)$", tc_text, re.M)
results["tensor_cores"] = {
    "status": by_name.get("tensor_cores", {}).get("status"),
    "cooperative_matrix_feature": coop_feature.group(1) == "yes" if coop_feature else None,
    "verdict": tc.group(1) if tc else None,
    "self_check_passed": bool(tc and "self-check passed" in tc.group(1)),
}

# analyze: landmark differences against the lavapipe reference and between precisions.
def landmarks(name):
    try:
        r = json.loads(read(os.path.join(logs, name + ".out")))
        return {l["name"]: (l["x"], l["y"]) for l in r["landmarks"]}, r
    except Exception:
        return None, None


def max_diff(a, b):
    if not a or not b:
        return None
    common = [k for k in a if k in b]
    if len(common) != len(a):
        return None
    return max(math.hypot(a[k][0] - b[k][0], a[k][1] - b[k][1]) for k in common)


try:
    ref = json.loads(read("tools/gpu_check_reference.json"))
    ref_lm = {k: tuple(v) for k, v in ref["landmarks"].items()}
except Exception:
    ref, ref_lm = None, None
analyze = {"reference": "tools/gpu_check_reference.json (lavapipe, f32)" if ref else None}
lm32, _ = landmarks("analyze_f32")
for v in ("f32", "f16", "f16_tc"):
    lm, rec = landmarks("analyze_" + v)
    entry = {"status": by_name.get("analyze_" + v, {}).get("status")}
    if rec:
        entry.update({
            "adapter": rec.get("adapter"),
            "inference_ms": rec.get("timing_ms", {}).get("inference"),
            "max_px_vs_reference": max_diff(lm, ref_lm),
            "max_px_vs_f32_here": None if v == "f32" else max_diff(lm, lm32),
            "parameters": {p["name"]: p["value"] for p in rec.get("parameters", [])},
        })
    analyze[v] = entry
results["analyze"] = analyze

# tune.
tune = {}
for fam in ("cervical", "csm"):
    name = "tune_" + fam
    text = read(os.path.join(logs, name + ".out"))
    rows = []
    for line in text.splitlines():
        m = re.match(r"^(\S.*?)\s+(\S+)\s+(\S+)\s+(\S+)\s+(direct|tiled|winograd|coop\S*)$", line)
        if m and not line.startswith("convolution"):
            num = lambda t: None if t == "-" else float(t)
            rows.append({"convolution": m.group(1), "direct_ms": num(m.group(2)), "tiled_ms": num(m.group(3)),
                         "winograd_ms": num(m.group(4)), "fastest": m.group(5)})
    tune[fam] = {"status": by_name.get(name, {}).get("status"),
                 "seconds": by_name.get(name, {}).get("seconds"), "shapes": rows,
                 "summary": tail(text, 1) if text else None}
try:
    tune["table"] = json.loads(read(os.path.join(out, "tuning.json")))
except Exception:
    tune["table"] = None
results["tune"] = tune

# bench.
bench = {}
for step in steps:
    if not step["name"].startswith("bench_"):
        continue
    name = step["name"]
    entry = {"status": step["status"], "seconds": step["seconds"], "command": step["command"]}
    try:
        entry["result"] = json.loads(read(os.path.join(logs, name + ".json")))
    except Exception:
        entry["result"] = None
    bench[name[len("bench_"):]] = entry
results["bench"] = bench

with open(os.path.join(out, "results.json"), "w") as f:
    json.dump(results, f, indent=1)

# Markdown.
def fmt(v, spec=".2f"):
    return "-" if v is None else format(v, spec)


md = [f"# sagitta GPU check ({results['date_utc']}{', small mode' if results['small'] else ''})", ""]
md.append(f"- adapter: {results['info']['chosen'] or 'none'} (NVIDIA on Vulkan: "
          f"{'yes' if results['info']['nvidia_on_vulkan'] else 'no'})")
if results["nvidia_smi"]:
    md.append(f"- nvidia-smi: {results['nvidia_smi'].splitlines()[-1]}")
py = results["python"]
md.append(f"- PyTorch: {py.get('torch', '-')}, CUDA available: {py.get('cuda', '-')}; "
          f"Vulkan loader: {results['vulkan_loader']}; ICD: {results['nvidia_icd']}")
t = results["tensor_cores"]
md.append(f"- tensor cores: cooperative matrix feature {t['cooperative_matrix_feature']}; "
          f"`SAGITTA_COOPERATIVE_MATRIX=on sagitta info`: {t['verdict']}")
md.append(f"- commit {results['git_commit'] or '-'}; wall {results['wall_s']} s of a {results['budget_s']} s budget")
md.append("")
md.append("## Pipeline latency, sagitta vs PyTorch (same random weights and image)")
md.append("")
md.append("| run | model | precision | tensor cores | image | sagitta median ms | sagitta min ms | PyTorch median ms "
          "| PyTorch | sagitta/torch | sagitta GPU MiB | torch peak MiB | dispatches | prepare s | convolutions |")
md.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for key, e in bench.items():
    r = e.get("result") or {}
    s = r.get("sagitta") or {}
    tr = r.get("torch") or {}
    lat = s.get("latency_ms") or {}
    tp = tr.get("pipeline_ms") or {}
    mem = s.get("gpu_memory") or {}
    mib = (sum(mem.values()) / 2**20) if mem else None
    peak = tr.get("peak_memory_bytes")
    ratio = lat["median"] / tp["median"] if lat.get("median") and tp.get("median") else None
    convs = s.get("convolutions") or ""
    requested = "SAGITTA_COOPERATIVE_MATRIX=on" in e["command"]
    coop = re.search(r"conv2d_coop x(\d+)", convs)
    tc_col = f"on, {coop.group(1)} convs" if coop else ("allowed, not used" if requested else "off")
    torch_col = f"{tr.get('device', '-')} {tr.get('precision', '')}" if tr else "-"
    if r.get("torch_error"):
        torch_col = "failed: " + r["torch_error"][-80:].replace("|", "/")
    if not r:
        md.append(f"| {key} | | | {tc_col} | | {e['status']} | | | | | | | | | |")
        continue
    md.append(f"| {key} | {s.get('model', '-')} | {s.get('precision', '-')} | {tc_col} | "
              f"{'x'.join(map(str, s.get('image', [])))} | {fmt(lat.get('median'))} | {fmt(lat.get('min'))} | "
              f"{fmt(tp.get('median'))} | {torch_col} | {fmt(ratio)} | "
              f"{fmt(mib, '.1f')} | {fmt(peak / 2**20 if peak else None, '.1f')} | {s.get('dispatches', '-')} | "
              f"{fmt(s.get('prepare_s'))} | {convs or '-'} |")
md.append("")
stage_rows = [(k, (e.get("result") or {}).get("sagitta", {}).get("stages_ms") or []) for k, e in bench.items()]
stage_rows = [(k, st) for k, st in stage_rows if st]
if stage_rows:
    names = [n for n, _ in stage_rows[0][1]]
    md.append("## Per-stage GPU time, ms (median, timestamp queries)")
    md.append("")
    md.append("| run | " + " | ".join(names) + " | sum |")
    md.append("|---|" + "---|" * (len(names) + 1))
    for k, st in stage_rows:
        d = dict((n, s["median"]) for n, s in st)
        md.append(f"| {k} | " + " | ".join(fmt(d.get(n)) for n in names) + f" | {fmt(sum(d.values()))} |")
    md.append("")
md.append("## Heaviest kernel shapes (count x ms per dispatch, each shape timed alone)")
md.append("")
md.append("| run | kernel | shape | count | sagitta ms | GFLOP/s | torch ms | sagitta/torch |")
md.append("|---|---|---|---|---|---|---|---|")
for key, e in bench.items():
    r = e.get("result") or {}
    rows = r.get("kernels") or []
    tk = {k["index"]: k.get("median_ms") for k in ((r.get("torch") or {}).get("kernels") or [])}
    order = sorted(range(len(rows)), key=lambda i: -(rows[i].get("median_ms") or 0) * rows[i].get("count", 1))
    for i in order[:6]:
        k = rows[i]
        sh = k.get("shape") or {}
        if k["kernel"].startswith("conv2d"):
            st = sh.get("stride") or [0, 0]
            stride = st[0] if st[0] == st[1] else f"{st[0]}x{st[1]}"
            shape = (f"{sh.get('n')}x{sh.get('in_c')}x{sh.get('h')}x{sh.get('w')} -> {sh.get('out_c')} "
                     f"k{sh.get('kh')}x{sh.get('kw')} s{stride}")
        else:
            shape = ", ".join(f"{a}={b}" for a, b in sh.items() if a != "entry")[:48]
        t = tk.get(i)
        ratio = k["median_ms"] / t if t and k.get("median_ms") else None
        md.append(f"| {key} | {k['kernel']} | {shape} | {k.get('count')} | {fmt(k.get('median_ms'), '.3f')} | "
                  f"{fmt(k.get('gflops'), '.1f')} | {fmt(t, '.3f')} | {fmt(ratio)} |")
md.append("")
md.append("## Landmarks of samples/phantom_dicom.dcm (default weights), largest difference in px")
md.append("")
md.append("| run | status | vs lavapipe f32 reference | vs this GPU's f32 | inference ms |")
md.append("|---|---|---|---|---|")
labels = {"f32": "f32", "f16": "f16", "f16_tc": "f16, tensor cores, every convolution tiled"}
for v in ("f32", "f16", "f16_tc"):
    a = analyze.get(v, {})
    md.append(f"| {labels[v]} | {a.get('status')} | {fmt(a.get('max_px_vs_reference'), '.4f')} | "
              f"{fmt(a.get('max_px_vs_f32_here'), '.4f')} | {fmt(a.get('inference_ms'), '.1f')} |")
md.append("")
md.append("## Tuning")
md.append("")
for fam in ("cervical", "csm"):
    tf = tune.get(fam, {})
    picks = {}
    for row in tf.get("shapes", []):
        picks[row["fastest"]] = picks.get(row["fastest"], 0) + 1
    md.append(f"- {fam}: {tf.get('status')}, {fmt(tf.get('seconds'), '.1f')} s, {len(tf.get('shapes', []))} shapes, "
              f"fastest: {', '.join(f'{k} x{n}' for k, n in sorted(picks.items())) or '-'}")
md.append("")
md.append("## Steps")
md.append("")
md.append("| step | status | exit | seconds | timeout |")
md.append("|---|---|---|---|---|")
for s in steps:
    md.append(f"| {s['name']} | {s['status']} | {s['exit_code'] if s['exit_code'] is not None else '-'} | "
              f"{s['seconds']:.1f} | {s['timeout_s']} |")
failed = [s for s in steps if s["status"] not in ("ok", "skipped")]
skipped = [s["name"] for s in steps if s["status"] == "skipped"]
if failed or skipped:
    md.append("")
    md.append("## Failures")
    if skipped:
        md.append("")
        md.append("Skipped: " + ", ".join(skipped))
    for s in failed:
        md.append("")
        md.append(f"**{s['name']}** ({s['status']}, exit {s['exit_code']}): `{s['command']}`")
        md.append("")
        md.append("```")
        md.append(s.get("stderr_tail") or s.get("stdout_tail") or "(no output)")
        md.append("```")
with open(os.path.join(out, "results.md"), "w") as f:
    f.write("\n".join(md) + "\n")
# On stdout (the end of a log that may come back cut) all but the per-kernel section.
shown, skip = [], False
for line in md:
    if line.startswith("## "):
        skip = line.startswith("## Heaviest kernel shapes")
    if not skip:
        shown.append(line)
print("\n".join(shown))
PYEOF
rc=$?
[ $rc -ne 0 ] && log "writing the results failed (exit $rc); the raw logs are in $LOGS"
rm -rf "$WORK"
log "done in ${SECONDS}s: $OUTDIR/results.json, $OUTDIR/results.md"
