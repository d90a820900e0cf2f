// Precompiled for every LibTorch-facing target: parsing these headers costs
// tens of seconds per translation unit otherwise.
#pragma once
#include <torch/torch.h>
