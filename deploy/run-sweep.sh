#!/usr/bin/env bash
# Run a sweep on a Ray cluster with its checkpoints on an object store, then copy the driver's
# results folder to the object store too, so a laptop can fetch it and run `ocfb-suite summarize`.
#
#   deploy/run-sweep.sh CONFIG OUT [sweep flags...]
#
# Environment (never the sweep file: it is shared, committed, and holds no secrets):
#   OCFB_STORAGE_PATH  object-store URI for Ray's experiment state and checkpoints, e.g.
#                      s3://my-bucket/ocfb/ray (added to a copy of CONFIG as storage_path)
#   OCFB_RESULTS_URI   where to copy OUT when the driver exits, e.g. s3://my-bucket/ocfb/results
#                      (unset: results stay on the driver's disk)
#   RAY_ADDRESS        the cluster to join (KubeRay sets it for a RayJob; `auto` on a head node)
#   AWS_* / IRSA / instance profile: credentials, read by pyarrow and boto3 from the environment
#
# Exits with the sweep's own code (0 done, 1 interrupted: resume with `ocfb-suite resume OUT`,
# 2 refused before Ray started); the copy runs in every case, so partial results are visible.
set -uo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG OUT [sweep flags...]" >&2
    exit 2
fi
config=$1
out=$2
shift 2
sweep_file=$(mktemp --suffix=.yaml)
trap 'rm -f "$sweep_file"' EXIT
cp "$config" "$sweep_file" || exit 2
if [ -n "${OCFB_STORAGE_PATH:-}" ]; then
    if grep -q '^storage_path:' "$sweep_file"; then
        echo "$config already sets storage_path; unset OCFB_STORAGE_PATH or remove the key" >&2
        exit 2
    fi
    printf '\nstorage_path: %s\n' "$OCFB_STORAGE_PATH" >> "$sweep_file"
fi
ocfb-suite sweep "$sweep_file" --out "$out" "$@"
rc=$?
if [ -n "${OCFB_RESULTS_URI:-}" ] && [ -d "$out" ]; then
    # pyarrow picks the filesystem from the URI and the credentials from the environment;
    # Ray's own folder is left out when it is local (the checkpoints are in OCFB_STORAGE_PATH)
    python - "$out" "$OCFB_RESULTS_URI" <<'PY' || { echo "copy to $OCFB_RESULTS_URI failed" >&2; [ "$rc" -eq 0 ] && rc=1; }
import sys
from pathlib import Path

import pyarrow.fs as pafs

src, dest = Path(sys.argv[1]), sys.argv[2].rstrip("/")
for item in sorted(src.iterdir()):
    if item.name in ("ray", "previous") or item.name.startswith((".", "previous-")):
        continue
    target = f"{dest}/{item.name}"
    if item.is_dir():
        pafs.copy_files(str(item.resolve()), target)
    else:
        fs, path = pafs.FileSystem.from_uri(target)
        with open(item, "rb") as fin, fs.open_output_stream(path) as fout:
            fout.write(fin.read())
print(f"copied {src} to {dest}")
PY
fi
exit $rc
