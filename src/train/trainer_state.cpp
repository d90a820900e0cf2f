#include "cpt/train/trainer_state.h"

#include <cmath>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <optional>
#include <sstream>

#include "cpt/common/error.h"

namespace fs = std::filesystem;

namespace cpt::train {

std::string trainer_state_json(const TrainerState& state, int64_t optimizer_steps, int world_size) {
  const nlohmann::json json = {{"format_version", 1},
                               {"step", state.step},
                               {"tokens", state.tokens},
                               {"optimizer_steps", optimizer_steps},
                               {"world_size", world_size},
                               {"nonfinite_in_row", state.nonfinite_in_row},
                               {"elapsed_s", state.elapsed_s},
                               {"config_hash", state.config_hash},
                               {"resume_guard", state.resume_guard},
                               {"data", state.data.to_json()},
                               {"log_window", state.log_window}};
  return json.dump(2) + "\n";
}

TrainerState parse_trainer_state(const std::string& text, const std::string& source) {
  const nlohmann::json json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) throw InputError(fmt::format("'{}' is not valid JSON", source));
  // A count: a JSON integer (get<int64_t> of a float past int64's range
  // would be undefined behaviour); the range is checked below.
  const auto count = [&](const char* key, std::optional<int64_t> otherwise) -> int64_t {
    if (!json.contains(key) && otherwise) return *otherwise;
    const nlohmann::json& value = json.at(key);
    if (!value.is_number_integer() || (value.is_number_unsigned() && value.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))) {
      throw InputError(fmt::format("'{}': \"{}\" is {}, not a count", source, key, value.dump()));
    }
    return value.get<int64_t>();
  };
  TrainerState state;
  try {
    state.step = count("step", std::nullopt);
    state.tokens = count("tokens", std::nullopt);
    state.nonfinite_in_row = count("nonfinite_in_row", 0);
    state.config_hash = json.value("config_hash", std::string());
    state.resume_guard = json.value("resume_guard", nlohmann::json());
    state.log_window = json.value("log_window", nlohmann::json());
    state.optimizer_steps = count("optimizer_steps", state.step);
    if (json.contains("elapsed_s")) {  // absent in checkpoints from before it was kept
      const nlohmann::json& elapsed = json.at("elapsed_s");
      if (!elapsed.is_number() || !std::isfinite(elapsed.get<double>()) || elapsed.get<double>() < 0) {
        throw InputError(fmt::format("'{}': \"elapsed_s\" is {}, not a number of seconds", source, elapsed.dump()));
      }
      state.elapsed_s = elapsed.get<double>();
    }
    state.data = data::BlendState::from_json(json.at("data"));
  } catch (const nlohmann::json::exception& e) {
    throw InputError(fmt::format("'{}': {}", source, e.what()));
  } catch (const InputError& e) {
    const std::string what = e.what();
    throw InputError(what.rfind("'" + source + "'", 0) == 0 ? what : fmt::format("'{}': {}", source, what));
  }
  if (state.step < 0 || state.tokens < 0 || state.optimizer_steps < 0 || state.optimizer_steps > state.step ||
      state.nonfinite_in_row < 0) {
    throw InputError(fmt::format("'{}': step {}, tokens {}, optimizer_steps {} are not the counts of a run", source,
                                 state.step, state.tokens, state.optimizer_steps));
  }
  return state;
}

TrainerState read_trainer_state(const std::string& dir) {
  const std::string path = (fs::path(dir) / "trainer_state" / "state.json").string();
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(fmt::format("'{}' is missing: not a cpt-train checkpoint", path));
  std::stringstream text;
  text << in.rdbuf();
  return parse_trainer_state(text.str(), path);
}

}  // namespace cpt::train
