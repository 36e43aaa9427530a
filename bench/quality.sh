#!/usr/bin/env bash
# `make bench-quality`: detection quality, measured like speed (docs/QUALITY.md).
#  1. One-class Fashion-MNIST: for each class c, train on the training images
#     of class c (EPOCHS epochs, 32x32, 20% held out), score the 10,000 test
#     images, ROC AUC of class c (normal) against the nine others, for every
#     score rule in RULES: the per-class table and the mean.
#  2. The tutorial's recipe (`aedet demo`: sandals + 1% trousers) by each rule.
#  3. Synthetic surface defects (bench_textures): image and pixel AUROC.
# Environment: EPOCHS (20), SEED (0), CLASSES ("0 1 2 3 4 5 6 7 8 9"), RULES,
# PARTS ("oneclass demo textures"), WORK (a scratch folder), AEDET (the tool).
set -euo pipefail
cd "$(dirname "$0")/.."
aedet=${AEDET:-build/release/aedet}
textures=${TEXTURES_BIN:-build/release/bench/bench_textures}
data=${FASHION_DIR:-/usr/share/datasets/fashion-mnist}
epochs=${EPOCHS:-20}
seed=${SEED:-0}
classes=${CLASSES:-0 1 2 3 4 5 6 7 8 9}
rules=${RULES:-mse relative latent-knn combined topk:1 max ssim}
parts=${PARTS:-oneclass demo textures}
work=${WORK:-$(mktemp -d)}
mkdir -p "$work"
echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; epochs $epochs, seed $seed; work in $work"

auc() { # metrics.json KEY -> that AUC x 100, to 0.1 (to 0.001 with a third argument)
    sed -n "s/.*\"$2\": *\([0-9.eE+-]*\).*/\1/p" "$1" | head -1 | awk -v d="${3:-1}" '$1 == "" {printf "n/a"} $1 != "" {printf "%.*f", d, 100 * $1}'
}

if [[ " $parts " == *" oneclass "* ]]; then
    declare -A table
    for c in $classes; do
        start=$(date +%s)
        "$aedet" train "$data/train-images-idx3-ubyte.gz" --labels "$data/train-labels-idx1-ubyte.gz" \
            --normal-class "$c" --size 32 --epochs "$epochs" --seed "$seed" -o "$work/oc$c.aedet" --quiet
        secs=$(($(date +%s) - start))
        for r in $rules; do
            "$aedet" score "$work/oc$c.aedet" "$data/t10k-images-idx3-ubyte.gz" \
                --labels "$data/t10k-labels-idx1-ubyte.gz" --normal-class "$c" --score "$r" \
                --metrics "$work/oc$c-$r.json" --quiet --top 0 > /dev/null
            table[$r,$c]=$(auc "$work/oc$c-$r.json" roc_auc 3)
        done
        echo "class $c trained in $secs s"
    done
    printf '\n| one-class Fashion-MNIST, ROC AUC x100 | %s | mean |\n|---|' "$(echo $classes | sed 's/ / | /g')"
    for c in $classes; do printf -- '---|'; done
    printf -- '---|\n'
    for r in $rules; do
        printf '| %s |' "$r"
        values=
        for c in $classes; do
            printf ' %.1f |' "${table[$r,$c]}"
            values="$values ${table[$r,$c]}"
        done
        printf ' **%s** |\n' "$(echo $values | awk '{for (i = 1; i <= NF; i++) s += $i; printf "%.1f", s / NF}')"
    done
fi

if [[ " $parts " == *" demo "* ]]; then
    printf '\n| the tutorial recipe (aedet demo), ROC AUC | contaminated set | held-out split |\n|---|---|---|\n'
    for r in $rules; do
        "$aedet" demo --score "$r" --seed "$seed" --output "$work/demo-$r" --quiet > /dev/null
        printf '| %s | %s | %s |\n' "$r" "$(auc "$work/demo-$r/metrics.json" roc_auc)" \
            "$(auc "$work/demo-$r/metrics_validation.json" roc_auc)"
    done
fi

if [[ " $parts " == *" textures "* ]]; then
    rm -rf "$work/textures" # the generator writes only into a new folder
    "$textures" "$work/textures" --seed "$((seed + 1))" > /dev/null
    "$aedet" train "$work/textures" --layout mvtec --size 128 --epochs "${TEXTURE_EPOCHS:-20}" --seed "$seed" \
        --batch 8 -o "$work/textures.aedet" --quiet
    printf '\n| synthetic surface defects, AUROC x100 | image | pixel |\n|---|---|---|\n'
    for r in $rules; do
        "$aedet" score "$work/textures.aedet" "$work/textures" --layout mvtec --mvtec-split test --score "$r" \
            --metrics "$work/textures-$r.json" --quiet --top 0 > /dev/null
        printf '| %s | %s | %s |\n' "$r" "$(auc "$work/textures-$r.json" roc_auc)" \
            "$(auc "$work/textures-$r.json" pixel_roc_auc)"
    done
fi
