#pragma once
// The registry of named model shapes.

#include <string>
#include <vector>

#include "cpt/model/config.h"

namespace cpt::model {

struct Preset {
  std::string name;
  std::string description;
  Shape shape;
};

const std::vector<Preset>& presets();

// Throws ConfigValueError("model.preset", …) listing the valid names.
const Preset& find_preset(const std::string& name);

}  // namespace cpt::model
