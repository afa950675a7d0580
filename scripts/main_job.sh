#!/usr/bin/env bash
# The main job on the bundled fMRI sample: installs and builds tcorex if
# needed, converts the scan to HDF5, fits linear CorEx on 2 MPI ranks and
# writes the cluster labels back as a NIfTI image.
# Usage: scripts/main_job.sh [OUTPUT_FOLDER]   (default: ./out)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/out}
factors=${FACTORS:-8}
ranks=${RANKS:-2}

"$root/scripts/setup.sh"
tcorex="$root/build/tcorex"
mkdir -p "$out"

"$tcorex" convert --nifti "$root/datasets/fmri_functional.nii" \
  --output "$out/fmri.h5"
"$root/scripts/mpirun.sh" "$ranks" "$tcorex" fit --input "$out/fmri.h5" \
  --factors "$factors" --seed 1 --output "$out/fmri_model.h5"
"$tcorex" export --model "$out/fmri_model.h5" --reference "$out/fmri.h5" \
  --what clusters --output "$out/fmri_clusters.nii.gz"
"$tcorex" score --model "$out/fmri_model.h5" --input "$out/fmri.h5"
echo "main job: results in $out (fmri_model.h5, fmri_clusters.nii.gz)"
