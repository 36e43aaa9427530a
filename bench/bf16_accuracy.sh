#!/usr/bin/env bash
# What the opt-in bfloat16 mode (--bf16: AMX tiles, or AVX512-BF16 where the
# CPU has no tiles) does to results, on the demo's experiment (Fashion-MNIST:
# class 5 with 1% of class 1 mixed in):
#  1. training: `aedet demo` in float32 and in bf16 from the same seed, at
#     each size in SIZES (images resized), for each seed in SEEDS; prints the
#     last epoch's loss and validation loss and the ROC AUC on every image
#     and on the held-out split;
#  2. scoring: the float32 model of each run scored again with --bf16; prints
#     the largest relative difference of an image's score and whether the
#     same images are flagged.
# Environment: SIZES ("32 64 128"), SEEDS ("0 1"), EPOCHS (30), THREADS (all
# cores), AEDET (build/release/aedet). Needs a CPU with AMX-BF16 or
# AVX512-BF16 (the tiles where it has both).
set -euo pipefail
cd "$(dirname "$0")/.."
aedet=${AEDET:-build/release/aedet}
sizes=${SIZES:-"32 64 128"}
seeds=${SEEDS:-"0 1"}
epochs=${EPOCHS:-30}
threads=${THREADS:-$(nproc)}
data=/usr/share/datasets/fashion-mnist
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# last epoch's "loss X val_loss Y", then the two "ROC AUC" lines' values
summary() {
    awk '/^epoch/ { loss = $4; val = $6 }
         /^ROC AUC/ { auc[++n] = $3 }
         END { printf "loss %s val_loss %s auc %s heldout_auc %s", loss, val, auc[1], auc[2] }' "$1"
}

. bench/cpu.sh
echo "# $(cpu_line), $threads threads, $epochs epochs"
echo "# size seed mode: last loss, val_loss, ROC AUC (all images, held-out split)"
for size in $sizes; do
    for seed in $seeds; do
        for mode in float32 bf16; do
            flag=()
            [ "$mode" = bf16 ] && flag=(--bf16)
            "$aedet" demo --size "$size" --seed "$seed" --epochs "$epochs" --threads "$threads" \
                --output "$dir/$size.$seed.$mode" "${flag[@]}" > "$dir/$size.$seed.$mode.log" 2>&1
            echo "train $size $seed $mode $(summary "$dir/$size.$seed.$mode.log")"
        done
        # the float32 model scored in both modes, the demo's data flags
        for mode in float32 bf16; do
            flag=()
            [ "$mode" = bf16 ] && flag=(--bf16)
            "$aedet" score "$dir/$size.$seed.float32/model.aedet" "$data/train-images-idx3-ubyte.gz" \
                --labels "$data/train-labels-idx1-ubyte.gz" --normal-class 5 --anomaly-class 1 \
                --threads "$threads" --quiet -o "$dir/score.$mode.csv" "${flag[@]}" > /dev/null
        done
        awk -F, -v size="$size" -v seed="$seed" '
            FNR == 1 { next }
            FNR == NR { score[$2] = $4; flag[$2] = $6; next }
            { d = ($4 - score[$2]) / score[$2]; if (d < 0) d = -d; if (d > worst) worst = d
              if ($6 != flag[$2]) changed++ }
            END { printf "score %s %s float32 model: bf16 scores within %.2g (relative), %d of the flags changed\n",
                         size, seed, worst, changed }' "$dir/score.float32.csv" "$dir/score.bf16.csv"
    done
done
