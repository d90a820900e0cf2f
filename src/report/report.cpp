#include "cpt/report/report.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <vector>

#include "cpt/common/error.h"
#include "cpt/common/strings.h"
#include "cpt/config/config.h"
#include "cpt/data/indexed_dataset.h"
#include "cpt/io/atomic_file.h"
#include "cpt/model/shape.h"
#include "cpt/train/trainer_state.h"

namespace fs = std::filesystem;

namespace cpt::report {

namespace {

struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;
  bool reference = false;  // drawn dashed: a baseline, not a curve
};

constexpr const char* kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2"};

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

// Tick values at 1, 2 or 5 times a power of ten, about `count` of them.
std::vector<double> ticks(double low, double high, int count) {
  const double span = high - low;
  const double raw = span / count;
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  double step = power;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    step = m * power;
    if (step >= raw) break;
  }
  std::vector<double> out;
  for (double t = std::ceil(low / step) * step; t <= high + step * 1e-9; t += step) out.push_back(t);
  return out;
}

std::string tick_label(double value) {
  const double magnitude = std::abs(value);
  if (magnitude != 0 && (magnitude >= 1e5 || magnitude < 1e-3)) return fmt::format("{:.2g}", value);
  return fmt::format("{:.4g}", value);
}

// A line chart as inline SVG: axes with ticks, one polyline per series, a legend.
std::string line_chart(const std::string& title, const std::string& x_label, const std::vector<Series>& all) {
  std::vector<Series> series;
  for (const auto& s : all) {
    Series kept{s.name, {}, s.reference};
    for (const auto& p : s.points) {
      if (std::isfinite(p.first) && std::isfinite(p.second)) kept.points.push_back(p);
    }
    if (!kept.points.empty()) series.push_back(std::move(kept));
  }
  if (series.empty()) return "";
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (const auto& s : series) {
    for (const auto& [x, y] : s.points) {
      x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
    }
  }
  if (x1 <= x0) x1 = x0 + 1;
  if (y1 <= y0) {
    const double pad = std::max(std::abs(y0) * 0.05, 1e-12);
    y0 -= pad, y1 += pad;
  }
  const double pad = (y1 - y0) * 0.05;
  y0 -= pad, y1 += pad;
  constexpr double kWidth = 640, kHeight = 300, kLeft = 64, kRight = 16, kTop = 28, kBottom = 44;
  const auto sx = [&](double x) { return kLeft + (x - x0) / (x1 - x0) * (kWidth - kLeft - kRight); };
  const auto sy = [&](double y) { return kHeight - kBottom - (y - y0) / (y1 - y0) * (kHeight - kTop - kBottom); };
  std::string svg = fmt::format(
      "<svg class=\"chart\" viewBox=\"0 0 {} {}\" role=\"img\" aria-label=\"{}\">\n"
      "<text class=\"title\" x=\"{}\" y=\"18\">{}</text>\n",
      kWidth, kHeight, escape(title), kLeft, escape(title));
  for (double t : ticks(x0, x1, 6)) {
    svg += fmt::format("<line class=\"grid\" x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"{1}\" y2=\"{2}\"/>"
                       "<text class=\"tick\" x=\"{0:.1f}\" y=\"{3}\" text-anchor=\"middle\">{4}</text>\n",
                       sx(t), kTop, kHeight - kBottom, kHeight - kBottom + 16, tick_label(t));
  }
  for (double t : ticks(y0, y1, 5)) {
    svg += fmt::format("<line class=\"grid\" x1=\"{0}\" x2=\"{1}\" y1=\"{2:.1f}\" y2=\"{2:.1f}\"/>"
                       "<text class=\"tick\" x=\"{3}\" y=\"{4:.1f}\" text-anchor=\"end\">{5}</text>\n",
                       kLeft, kWidth - kRight, sy(t), kLeft - 6, sy(t) + 4, tick_label(t));
  }
  svg += fmt::format("<line class=\"axis\" x1=\"{0}\" x2=\"{1}\" y1=\"{2}\" y2=\"{2}\"/>"
                     "<text class=\"label\" x=\"{3}\" y=\"{4}\" text-anchor=\"middle\">{5}</text>\n",
                     kLeft, kWidth - kRight, kHeight - kBottom, (kLeft + kWidth - kRight) / 2, kHeight - 8,
                     escape(x_label));
  for (size_t i = 0; i < series.size(); ++i) {
    const char* colour = kPalette[i % std::size(kPalette)];
    std::string points;
    for (const auto& [x, y] : series[i].points) points += fmt::format("{:.1f},{:.1f} ", sx(x), sy(y));
    if (series[i].points.size() == 1) {
      const auto& [x, y] = series[i].points.front();
      svg += fmt::format("<circle class=\"series\" cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"{}\"/>\n", sx(x), sy(y),
                         colour);
    } else {
      svg += fmt::format("<polyline class=\"series\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.6\"{} points=\"{}\"/>\n",
                         colour, series[i].reference ? " stroke-dasharray=\"5 4\"" : "", points);
    }
    svg += fmt::format("<text class=\"legend\" x=\"{}\" y=\"{}\" fill=\"{}\" text-anchor=\"end\">{}</text>\n",
                       kWidth - kRight - 4, kTop + 14 + 14 * static_cast<double>(i), colour, escape(series[i].name));
  }
  return svg + "</svg>\n";
}

// Configured share against realised share per source, as paired bars.
std::string mix_chart(const std::vector<std::tuple<std::string, double, double>>& sources) {
  if (sources.empty()) return "";
  constexpr double kWidth = 640, kRow = 34, kLeft = 120, kRight = 60;
  const double height = 40 + kRow * static_cast<double>(sources.size()) + 24;
  std::string svg = fmt::format(
      "<svg class=\"chart\" viewBox=\"0 0 {} {}\" role=\"img\" aria-label=\"data mix\">\n"
      "<text class=\"title\" x=\"{}\" y=\"18\">data mix: configured (light) and realised (dark) share of tokens</text>\n",
      kWidth, height, kLeft);
  for (size_t i = 0; i < sources.size(); ++i) {
    const auto& [name, configured, realised] = sources[i];
    const double y = 36 + kRow * static_cast<double>(i);
    const double scale = kWidth - kLeft - kRight;
    const char* colour = kPalette[i % std::size(kPalette)];
    svg += fmt::format("<text class=\"tick\" x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n", kLeft - 8, y + 17,
                       escape(name));
    svg += fmt::format("<rect class=\"series\" x=\"{}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"12\" fill=\"{}\" "
                       "fill-opacity=\"0.35\"/>\n",
                       kLeft, y, std::max(1.0, configured * scale), colour);
    svg += fmt::format("<rect class=\"series\" x=\"{}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"12\" fill=\"{}\"/>\n", kLeft,
                       y + 13, std::max(1.0, realised * scale), colour);
    svg += fmt::format("<text class=\"tick\" x=\"{:.1f}\" y=\"{:.1f}\">{:.1f}% / {:.1f}%</text>\n",
                       kLeft + std::max(configured, realised) * scale + 6, y + 17, 100 * configured, 100 * realised);
  }
  return svg + "</svg>\n";
}

std::vector<nlohmann::json> read_rows(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw InputError(fmt::format("'{}' is missing: the run has logged nothing yet", path));
  std::vector<nlohmann::json> rows;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    auto row = nlohmann::json::parse(line, nullptr, false);
    if (row.is_discarded() || !row.is_object() || !row.contains("step") || !row["step"].is_number_integer()) {
      throw InputError(fmt::format("{}:{}: not a metrics row", path, number));
    }
    rows.push_back(std::move(row));
  }
  if (rows.empty()) throw InputError(fmt::format("'{}' is empty: the run has logged nothing yet", path));
  return rows;
}

std::optional<config::Config> read_config(const std::string& run_dir) {
  const fs::path path = fs::path(run_dir) / "config.resolved.yaml";
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  return config::load_text(text.str(), path.string()).config;
}

// Values of `key` against the row's step (or tokens).
Series column(const std::vector<nlohmann::json>& rows, const std::string& key, const std::string& name,
              bool by_tokens = false) {
  Series s{name, {}, false};
  for (const auto& row : rows) {
    if (row.contains(key) && row[key].is_number()) {
      s.points.emplace_back(row[by_tokens ? "tokens" : "step"].get<double>(), row[key].get<double>());
    }
  }
  return s;
}

uint64_t directory_bytes(const fs::path& dir) {
  uint64_t bytes = 0;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file()) bytes += entry.file_size();
  }
  return bytes;
}

constexpr const char* kStyle = R"(body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1340px;color:#222;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}.note{color:#555}
.grid-2{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:12px}
.narrow{max-width:660px}svg.chart{width:100%;height:auto;background:#fff;border:1px solid #ddd;border-radius:4px}
svg .grid{stroke:#eee}svg .axis{stroke:#888}svg .tick{font-size:11px;fill:#555}
svg .title{font-size:13px;font-weight:600;fill:#222}svg .label{font-size:12px;fill:#444}svg .legend{font-size:12px;paint-order:stroke;stroke:#fff;stroke-width:4px;stroke-linejoin:round}
table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:4px 12px;text-align:right}th{background:#f6f6f6}
td:first-child,th:first-child{text-align:left})";

// Checks in the browser that every chart drew something with a size, and
// says so on the page (and as a console error when one did not).
constexpr const char* kSelfCheck = R"(window.addEventListener('load',function(){
var charts=document.querySelectorAll('svg.chart'),drawn=0;
charts.forEach(function(chart){var ok=false;chart.querySelectorAll('.series').forEach(function(e){var b=e.getBBox();if(b.width>0||b.height>0)ok=true;});
if(ok)drawn++;else console.error('chart drew nothing: '+chart.getAttribute('aria-label'));});
document.body.setAttribute('data-charts',String(charts.length));document.body.setAttribute('data-drawn',String(drawn));});)";

// The tables `merge --sweep` saved beside the run: a chart of each eval
// set's loss against t and the table, with the point --pick chose.
std::vector<std::pair<std::string, std::string>> sweep_sections(const std::string& run_dir) {
  const fs::path dir = fs::path(run_dir) / "sweeps";
  std::vector<fs::path> files;
  if (fs::is_directory(dir)) {
    for (const auto& entry : fs::directory_iterator(dir)) {
      if (entry.is_regular_file() && entry.path().extension() == ".json") files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  std::vector<std::pair<std::string, std::string>> out;  // chart, table
  for (const auto& file : files) {
    try {
      std::ifstream in(file);
      const nlohmann::json sweep = nlohmann::json::parse(in);
      const auto sets = sweep.at("sets").get<std::vector<std::string>>();
      std::vector<Series> lines;
      for (const auto& set : sets) lines.push_back({set, {}, false});
      const std::optional<double> picked =
          sweep.contains("pick") && sweep["pick"].contains("t") ? std::optional(sweep["pick"]["t"].get<double>()) : std::nullopt;
      std::string table = "<table><tr><th>t</th>";
      for (const auto& set : sets) table += fmt::format("<th>{}</th>", escape(set));
      table += "</tr>\n";
      for (const auto& point : sweep.at("points")) {
        const double t = point.at("t").get<double>();
        table += fmt::format("<tr><td>{:g}{}</td>", t, picked == t ? " (picked)" : "");
        for (size_t i = 0; i < sets.size(); ++i) {
          const double loss = point.at("loss").at(sets[i]).get<double>();
          lines[i].points.emplace_back(t, loss);
          table += fmt::format("<td>{:.4f}</td>", loss);
        }
        table += "</tr>\n";
      }
      table += "</table>\n";
      const std::string method = sweep.at("merge_method").get<std::string>();
      std::string note = fmt::format("{} ({}): t = 0 is {}, t = 1 is {}; t sets {}.", escape(file.filename().string()),
                                     escape(method), escape(sweep.at("t0").get<std::string>()),
                                     escape(sweep.at("t1").get<std::string>()), escape(sweep.value("t_sets", "t")));
      if (sweep.contains("pick")) {
        note += fmt::format(" --pick \"{}\": {}.", escape(sweep["pick"].value("rule", "")),
                            picked ? fmt::format("t = {:g}, written to {}", *picked, escape(sweep["pick"].value("output", "")))
                                   : std::string("no point met it"));
      }
      // One chart per set: the sets' losses differ in scale, and the
      // general set's few hundredths are the point of the sweep.
      std::string charts;
      for (const auto& line : lines) {
        std::vector<Series> chart{line};
        const double base = line.points.front().second;
        chart.push_back({fmt::format("base model (t = {:g})", line.points.front().first), {{line.points.front().first, base}, {line.points.back().first, base}}, true});
        for (const auto& [t, loss] : line.points) {
          if (picked == t) chart.push_back({fmt::format("picked, t = {:g}", t), {{t, loss}}, false});
        }
        charts += line_chart(fmt::format("merge sweep {} ({}): {} loss", file.stem().string(), method, line.name), "t", chart);
      }
      out.emplace_back(charts, fmt::format("<p class=\"note\">{}</p>\n{}", note, table));
    } catch (const nlohmann::json::exception& e) {
      throw InputError(fmt::format("'{}' is not a sweep table of cpt-train merge --sweep: {}", file.string(), e.what()));
    }
  }
  return out;
}

}  // namespace

ReportSummary write_report(const std::string& run_dir, const std::string& output) {
  const std::string metrics_path = (fs::path(run_dir) / "metrics.jsonl").string();
  const std::vector<nlohmann::json> rows = read_rows(metrics_path);
  const std::optional<config::Config> config = read_config(run_dir);

  // The names of the sources and eval sets, from the config or the rows' keys.
  std::vector<std::string> sources, eval_sets;
  if (config) {
    for (const auto& s : config->data.sources) sources.push_back(s.name);
    for (const auto& e : config->data.eval) eval_sets.push_back(e.name);
  } else {
    for (const auto& row : rows) {
      for (auto item = row.begin(); item != row.end(); ++item) {
        const std::string key = item.key();  // not a structured binding: clang 14 cannot capture one
        const auto add = [&](std::vector<std::string>& names, const std::string& prefix) {
          if (key.rfind(prefix, 0) == 0 && key.size() > prefix.size() + 5 && key.substr(key.size() - 5) == "/loss") {
            const std::string name = key.substr(prefix.size(), key.size() - prefix.size() - 5);
            if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
          }
        };
        add(sources, "train/");
        add(eval_sets, "eval/");
      }
    }
  }

  std::vector<std::string> charts;
  {
    std::vector<Series> loss{column(rows, "loss", "all sources")};
    for (const auto& s : sources) loss.push_back(column(rows, "train/" + s + "/loss", s));
    charts.push_back(line_chart("training loss (mean over each logging interval)", "step", loss));
  }
  for (const auto& e : eval_sets) {
    Series curve = column(rows, "eval/" + e + "/loss", e, /*by_tokens=*/true);
    std::vector<Series> lines{curve};
    // The step-0 evaluation is the base model's loss: the line to stay near
    // (general data) or to fall below (domain data).
    for (const auto& row : rows) {
      if (row["step"] == 0 && row.contains("eval/" + e + "/loss") && curve.points.size() > 1) {
        const double base = row["eval/" + e + "/loss"].get<double>();
        lines.push_back({"step 0 (base model)", {{curve.points.front().first, base}, {curve.points.back().first, base}}, true});
      }
    }
    charts.push_back(line_chart(fmt::format("eval loss: {}", e), "training tokens", lines));
  }
  charts.push_back(line_chart("learning rate", "step", {column(rows, "lr", "lr")}));
  charts.push_back(line_chart("throughput", "step", {column(rows, "tokens_per_s", "tokens/s (all ranks)")}));
  {
    Series mfu = column(rows, "mfu", "MFU, %");
    for (auto& p : mfu.points) p.second *= 100;
    charts.push_back(line_chart("model FLOPs utilisation", "step", {mfu}));
  }

  // The realised mix: each source's share of the training tokens logged.
  std::vector<std::tuple<std::string, double, double>> mix;
  std::string epochs;
  if (config) {
    double weights = 0, served = 0;
    std::vector<double> tokens(config->data.sources.size(), 0.0);
    for (const auto& s : config->data.sources) weights += s.weight;
    for (const auto& row : rows) {
      for (size_t i = 0; i < tokens.size(); ++i) {
        const std::string key = "train/" + config->data.sources[i].name + "/tokens";
        if (row.contains(key) && row[key].is_number()) tokens[i] += row[key].get<double>();
      }
    }
    for (double t : tokens) served += t;
    if (served > 0) {
      std::vector<std::string> parts;
      for (size_t i = 0; i < tokens.size(); ++i) {
        const auto& s = config->data.sources[i];
        mix.emplace_back(s.name, s.weight / weights, tokens[i] / served);
        // Epochs: tokens served over the shard's tokens, where the shard is here to count.
        try {
          const data::IndexedDataset shard(s.prefix);
          parts.push_back(fmt::format("{} {:.3g}", s.name, tokens[i] / static_cast<double>(shard.tokens())));
        } catch (const std::exception&) {
          parts.push_back(fmt::format("{} ? (shard not found)", s.name));
        }
      }
      epochs = "epochs so far: " + join(parts, ", ");
    }
  }
  const std::string mix_svg = mix_chart(mix);

  // The checkpoints, newest last.
  std::string table;
  const fs::path checkpoints = fs::path(run_dir) / "checkpoints";
  std::string latest;
  if (std::ifstream in(checkpoints / "latest"); in) std::getline(in, latest);
  if (fs::is_directory(checkpoints)) {
    std::vector<fs::path> steps;
    for (const auto& entry : fs::directory_iterator(checkpoints)) {
      if (entry.is_directory() && entry.path().filename().string().rfind("step-", 0) == 0) steps.push_back(entry.path());
    }
    std::sort(steps.begin(), steps.end());
    for (const auto& dir : steps) {
      std::string tokens = "?", elapsed = "?";
      try {
        const train::TrainerState state = train::read_trainer_state(dir.string());
        tokens = human_count(static_cast<double>(state.tokens));
        elapsed = fmt::format("{:.0f} s", state.elapsed_s);
      } catch (const std::exception&) {
      }
      table += fmt::format("<tr><td>{}{}</td><td>{}</td><td>{}</td><td>{:.1f} MB</td></tr>\n",
                           escape(dir.filename().string()), dir.filename() == latest ? " (latest)" : "", tokens, elapsed,
                           static_cast<double>(directory_bytes(dir)) / 1e6);
    }
  }

  const nlohmann::json& last = rows.back();
  std::string html = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n";
  const std::string name = config ? config->run.name : fs::path(run_dir).filename().string();
  html += fmt::format("<title>cpt-train report: {}</title>\n<style>{}</style>\n</head><body>\n", escape(name), kStyle);
  html += fmt::format("<h1>{}</h1>\n<p class=\"note\">{}: step {}, {} training tokens", escape(name), escape(run_dir),
                      last["step"].get<int64_t>(), human_count(last.value("tokens", 0.0)));
  if (config) {
    html += fmt::format("; {} parameters, {} steps planned",
                        human_count(static_cast<double>(model::parameter_count(config->model.shape))), config->train.steps);
  }
  html += "</p>\n<h2>Curves</h2>\n<div class=\"grid-2\">\n";
  int chart_count = 0;
  for (const auto& chart : charts) {
    if (chart.empty()) continue;
    html += chart;
    ++chart_count;
  }
  html += "</div>\n";
  if (!mix_svg.empty()) {
    html += fmt::format("<h2>Data mix</h2>\n<div class=\"narrow\">{}</div>\n<p class=\"note\">{}</p>\n", mix_svg,
                        escape(epochs));
    ++chart_count;
  }
  const auto sweeps = sweep_sections(run_dir);
  if (!sweeps.empty()) {
    html += "<h2>Merge sweeps</h2>\n";
    for (const auto& [sweep_charts, sweep_table] : sweeps) {
      html += fmt::format("<div class=\"grid-2\">{}</div>\n{}", sweep_charts, sweep_table);
      for (size_t at = sweep_charts.find("<svg"); at != std::string::npos; at = sweep_charts.find("<svg", at + 1)) ++chart_count;
    }
  }
  if (!table.empty()) {
    html += "<h2>Checkpoints</h2>\n<table><tr><th>checkpoint</th><th>tokens</th><th>training time</th><th>size</th></tr>\n" +
            table + "</table>\n";
  }
  html += fmt::format("<script>{}</script>\n</body></html>\n", kSelfCheck);
  io::write_file_atomic(output, html);
  return {output, chart_count, static_cast<int>(rows.size())};
}

}  // namespace cpt::report
