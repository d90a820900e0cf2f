#pragma once
// Where a model directory is, given what a user would type: a checkpoint's
// step directory or any Hugging Face model directory, a run directory
// (its latest checkpoint), its checkpoints/ directory, or the
// checkpoints/latest file itself. Pure C++.

#include <string>

namespace cpt::io {

// The model directory `path` addresses: `path` itself when it holds a
// config.json or is none of the above (the caller's error then names it);
// otherwise the checkpoint `latest` names. Throws InputError when `latest`
// names a checkpoint that is not there.
std::string resolve_model_dir(const std::string& path);

}  // namespace cpt::io
