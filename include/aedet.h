/* aedet: anomaly detection in images with a convolutional autoencoder.
 * The whole public API; each part has its own header under aedet/. */
#ifndef AEDET_H
#define AEDET_H

#include "aedet/common.h"
#include "aedet/file.h"
#include "aedet/nn.h"
#include "aedet/image.h"
#include "aedet/data.h"
#include "aedet/eval.h"
#include "aedet/model_file.h"
#include "aedet/keras.h"
#include "aedet/score.h"
#include "aedet/train.h"
#include "aedet/report.h"
#include "aedet/fit.h"
#include "aedet/array.h"

#endif
